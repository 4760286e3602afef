//! `Broker::open_existing` (and `BrokerConfig::create(false)`) opens only a
//! directory that already is a broker: a mistyped or wrong path is
//! `BrokerNotFound`, and nothing is created there.

mod support;

use millpond::{Broker, BrokerConfig, Error, Record, StartFrom, TopicConfig};
use support::dir::TempDir;
use support::tree::snapshot;

#[test]
fn a_missing_path_is_broker_not_found_and_nothing_is_created() {
    let tmp = TempDir::new("open-existing-missing");
    let typo = tmp.path().join("brokers").join("prod");
    let err = Broker::open_existing(&typo).unwrap_err();
    assert!(matches!(&err, Error::BrokerNotFound { path } if path == &typo), "{err}");
    assert!(!tmp.path().join("brokers").exists(), "not even the parent was created");
}

#[test]
fn an_existing_directory_that_is_not_a_broker_is_left_as_it_was() {
    let tmp = TempDir::new("open-existing-foreign");
    std::fs::write(tmp.path().join("notes.txt"), b"mine").unwrap();
    std::fs::create_dir(tmp.path().join("topics")).unwrap(); // looks a little like one
    let before = snapshot(tmp.path());
    let err = Broker::open_with(tmp.path(), BrokerConfig::default().create(false)).unwrap_err();
    assert!(matches!(err, Error::BrokerNotFound { .. }), "{err}");
    assert_eq!(snapshot(tmp.path()), before, "nothing created, written or deleted");
}

#[test]
fn a_broker_made_earlier_opens_with_its_records() {
    let tmp = TempDir::new("open-existing-ok");
    {
        let broker = Broker::open(tmp.path()).unwrap();
        broker.create_topic("t", TopicConfig::default()).unwrap().producer().send(Record::new("kept")).unwrap();
    }
    let broker = Broker::open_existing(tmp.path()).unwrap();
    let mut c = broker.topic("t").unwrap().consumer(StartFrom::Earliest).unwrap();
    assert_eq!(c.try_recv().unwrap().unwrap().value(), b"kept");
    // Still one owner at a time.
    assert!(matches!(Broker::open_existing(tmp.path()), Err(Error::Locked { .. })));
}

#[test]
fn a_symlinked_lock_file_is_not_a_broker() {
    let tmp = TempDir::new("open-existing-symlink");
    let real = TempDir::new("open-existing-symlink-target");
    drop(Broker::open(real.path()).unwrap());
    std::os::unix::fs::symlink(real.path().join("millpond.lock"), tmp.path().join("millpond.lock")).unwrap();
    let err = Broker::open_existing(tmp.path()).unwrap_err();
    assert!(matches!(err, Error::BrokerNotFound { .. }), "{err}");
    assert!(!tmp.path().join("topics").exists());
}
