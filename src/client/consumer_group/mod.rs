//! Consumer groups in the client API: [`Group`](crate::Group) and
//! [`GroupMember`](crate::GroupMember).

pub(crate) mod group;
