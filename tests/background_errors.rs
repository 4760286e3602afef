//! Failures of background work reach the application as typed values, once
//! per distinct failure, and never as text on the host's stderr.

mod support;

use std::sync::{Arc, Mutex};

use millpond::{AutoCommit, BackgroundError, BackgroundTask, Broker, BrokerConfig, Record, TopicConfig};
use support::child;
use support::dir::TempDir;

/// A broker whose background failures are collected.
fn collecting(dir: &std::path::Path) -> (Broker, Arc<Mutex<Vec<BackgroundError>>>) {
    let seen: Arc<Mutex<Vec<BackgroundError>>> = Arc::default();
    let sink = Arc::clone(&seen);
    let config = BrokerConfig::default().on_background_error(move |e| sink.lock().unwrap().push(e.clone()));
    (Broker::open_with(dir, config).unwrap(), seen)
}

/// Makes the group's commits fail: its offsets directory becomes a file.
fn break_group_dir(dir: &std::path::Path, group: &str) {
    let group_dir = dir.join("groups").join(group);
    let _ = std::fs::remove_dir_all(&group_dir);
    std::fs::write(&group_dir, b"not a directory").unwrap();
}

/// A broker whose group "billing" on topic "orders" just failed to commit
/// when its member was dropped (the member had read one record, then the
/// group's offsets directory became a file).
struct FailedDropCommit {
    _tmp: TempDir,
    dir: std::path::PathBuf,
    broker: Broker,
    topic: millpond::Topic,
    group: millpond::Group,
    seen: Arc<Mutex<Vec<BackgroundError>>>,
}

fn failed_drop_commit(label: &str) -> FailedDropCommit {
    let tmp = TempDir::new(label);
    let dir = tmp.join("broker");
    let (broker, seen) = collecting(&dir);
    let topic = broker.create_topic("orders", TopicConfig::default()).unwrap();
    topic.producer().send(Record::new("a")).unwrap();
    let group = topic.group("billing").unwrap().auto_commit(AutoCommit::Interval(std::time::Duration::from_secs(3600)));
    let mut member = group.join().unwrap();
    assert!(member.try_recv().unwrap().is_some());
    break_group_dir(&dir, "billing");
    drop(member); // commits its position: fails
    FailedDropCommit { _tmp: tmp, dir, broker, topic, group, seen }
}

#[test]
fn a_commit_that_fails_when_a_member_is_dropped_is_reported_with_its_group_and_topic() {
    let FailedDropCommit { _tmp, broker, topic, seen, .. } = failed_drop_commit("bgerr-dropcommit");

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "one failure, one report: {seen:?}");
    assert_eq!(seen[0].task, BackgroundTask::DropCommit);
    assert_eq!(seen[0].group.as_deref(), Some("billing"));
    assert_eq!(seen[0].topic.as_deref(), Some("orders"));
    let listed = broker.background_errors();
    assert_eq!(listed.len(), 1, "the failure is current: {listed:?}");
    assert_eq!(listed[0].task, BackgroundTask::DropCommit);
    drop((topic, broker));
}

#[test]
fn the_same_drop_time_failure_again_is_not_news() {
    let FailedDropCommit { _tmp, broker, topic, group, seen, .. } = failed_drop_commit("bgerr-dropcommit-twice");
    let mut second = group.join().unwrap();
    let _ = second.try_recv(); // its own commits fail too; what it read does not matter
    drop(second);
    let tasks: Vec<BackgroundTask> = seen.lock().unwrap().iter().map(|e| e.task).collect();
    assert_eq!(tasks, [BackgroundTask::DropCommit], "reported once, not once per member");
    drop((topic, broker));
}

#[test]
fn a_drop_time_commit_that_succeeds_again_clears_the_failure() {
    let FailedDropCommit { _tmp, dir, broker, topic, group, seen } = failed_drop_commit("bgerr-dropcommit-cleared");
    assert_eq!(broker.background_errors().len(), 1);
    // Repaired: the next member's commit on drop works, and the failure is over.
    std::fs::remove_file(dir.join("groups").join("billing")).unwrap();
    std::fs::create_dir(dir.join("groups").join("billing")).unwrap();
    let mut second = group.join().unwrap();
    let _ = second.try_recv().unwrap();
    drop(second);
    assert!(broker.background_errors().is_empty(), "still listed: {:?}", broker.background_errors());
    // So the same failure again is news again.
    topic.producer().send(Record::new("b")).unwrap();
    break_group_dir(&dir, "billing");
    let mut third = group.join().unwrap();
    let _ = third.try_recv();
    drop(third);
    let tasks: Vec<BackgroundTask> = seen.lock().unwrap().iter().map(|e| e.task).collect();
    assert_eq!(tasks, [BackgroundTask::DropCommit, BackgroundTask::DropCommit]);
    drop((topic, broker));
}

/// The child's part of the test below: meet a background failure with no
/// logger and no callback installed.
fn fail_quietly(dir: &std::path::Path) {
    let broker = Broker::open(dir).unwrap();
    let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
    topic.producer().send(Record::new("a")).unwrap();
    let mut member = topic.group("g").unwrap().join().unwrap();
    assert!(member.try_recv().unwrap().is_some());
    break_group_dir(dir, "g");
    drop(member);
    assert_eq!(broker.background_errors().len(), 1, "the failure happened");
}

#[test]
fn a_background_failure_writes_nothing_to_the_hosts_stderr() {
    if child::role().as_deref() == Some("fail-quietly") {
        fail_quietly(&child::dir());
        return;
    }
    let tmp = TempDir::new("bgerr-quiet");
    let out =
        child::command("a_background_failure_writes_nothing_to_the_hosts_stderr", "fail-quietly", &tmp.join("broker"))
            .output()
            .unwrap();
    assert!(out.status.success(), "the child failed: {}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stderr.is_empty(), "the library wrote to stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("1 passed"), "the child did not run the failing part: {stdout}");
    assert!(!stdout.contains("millpond:"), "the library wrote to stdout: {stdout}");
}
