//! `Mirror::lag` reports the records a mirror has not copied even when its
//! thread stopped before its first commit (its destination closed or full,
//! say), though its group then has neither members nor commits (for which
//! `Group::lag` is `GroupNotFound`).

mod support;

use std::time::Duration;

use millpond::{Broker, Mirror, Record, TopicConfig};
use support::dir::TempDir;
use support::wait::wait_until;

#[test]
fn a_stopped_mirror_still_reports_its_lag() {
    let tmp = TempDir::new("review-mirror-lag");
    let primary = Broker::open(tmp.path().join("primary")).unwrap();
    let backup = Broker::open(tmp.path().join("backup")).unwrap();
    let orders = primary.create_topic("orders", TopicConfig::default()).unwrap();
    let copy = backup.create_topic("orders", TopicConfig::default()).unwrap();
    orders.producer().send_batch((0..10u8).map(|i| Record::new(vec![i]))).unwrap();
    // The destination goes away (as a full or failed disk stops it): the
    // mirror's first round fails and its thread stops.
    backup.close().unwrap();
    let mirror = Mirror::start(&orders, &copy, "backup-mirror").unwrap();
    wait_until(Duration::from_secs(10), "the mirror thread to stop", || !mirror.is_running());
    assert!(mirror.error().is_some());
    // Nothing was copied: all 10 records are still to copy.
    match mirror.lag() {
        Ok(lag) => assert_eq!(lag, 10),
        Err(e) => panic!("Mirror::lag of a stopped mirror failed: {e} ({e:?}); its error was {:?}", mirror.error()),
    }
}
