//! `Group::delete` is atomic under kill -9. It once removed the group's
//! offsets directory with `remove_dir_all`, one file at a time; a kill
//! after `offsets` was unlinked but before `offsets.prev` was left a
//! directory that the next open read (falling back to `.prev`, as after a
//! crash inside a commit) as a group that exists, at the offsets of the
//! commit *before* its last one: the deleted group came back, rewound. Now
//! the directory is renamed into the trash first.
//!
//! The child, in a loop, makes a group commit offset 1 then offset 2
//! (printing `committed <group>` once the second commit returned), closes
//! it and deletes it (printing `deleted <group>`). The parent kills it at
//! random moments and checks, after every kill, that each group is either
//! gone or at offset 2, and that a group printed as deleted is gone.
//!
//! The torn state needs `offsets` to be listed before `offsets.prev`,
//! which tmpfs does (creation order); the test runs in /dev/shm when it
//! can (a kill -9 loses nothing of the page cache, so tmpfs is a fair
//! place for a process crash). On ext4 the hash order usually removes
//! `.prev` first, and the crash then leaves the current offsets: the group
//! still comes back, but with its last commit.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use millpond::{AutoCommit, Broker, Record, TopicConfig};
use support::child::{self, Monitored};
use support::rng::Lcg;

const TEST_NAME: &str = "a_group_deleted_during_a_kill_never_comes_back_rewound";
const RUN_ENV: &str = "MILLPOND_REVIEW_RUN";

struct ShmDir(PathBuf);
impl Drop for ShmDir {
    fn drop(&mut self) {
        if std::env::var_os("MILLPOND_KEEP_TEST_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn shm_dir() -> ShmDir {
    let base = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let p = base.join(format!("millpond-review-gdel-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&p).unwrap();
    ShmDir(p)
}

#[test]
fn a_group_deleted_during_a_kill_never_comes_back_rewound() {
    if child::role().is_some() {
        run_child(&child::dir(), child::param_u64(RUN_ENV));
        return;
    }
    let dir = shm_dir();
    {
        let broker = Broker::open(&dir.0).unwrap();
        let topic = broker.create_topic("t", TopicConfig::default()).unwrap();
        topic.producer().send_batch((0..3u8).map(|i| Record::new(vec![i]))).unwrap();
        broker.close().unwrap();
    }
    let mut rng = Lcg::new(0x5eed_de1e);
    let started = Instant::now();
    let mut kills = 0;
    // About 40 kills find the old defect; `MILLPOND_SOAK=1` runs many more.
    let (runs, budget) = if support::soak() { (600u64, 60) } else { (60, 10) };
    for run in 0..runs {
        if started.elapsed() > Duration::from_secs(budget) {
            break;
        }
        let mut cmd = child::command(TEST_NAME, "deleter", &dir.0);
        cmd.env(RUN_ENV, run.to_string());
        let mut m = Monitored::spawn(&mut cmd);
        let mut lines = Vec::new();
        m.expect_line("go", Duration::from_secs(20), |l| lines.push(l), "the child never started");
        std::thread::sleep(Duration::from_micros(rng.range(0, 4000)));
        let finished = m.kill9();
        kills += 1;
        lines.extend(finished.rest);
        let mut committed = BTreeSet::new();
        let mut deleted = BTreeSet::new();
        for l in &lines {
            if let Some(g) = l.strip_prefix("committed ") {
                committed.insert(g.to_string());
            } else if let Some(g) = l.strip_prefix("deleted ") {
                deleted.insert(g.to_string());
            }
        }
        // What the next open finds.
        let broker = Broker::open(&dir.0).unwrap();
        let topic = broker.topic("t").unwrap();
        for g in topic.groups().unwrap() {
            let offsets = topic.group(&g).unwrap().committed().unwrap();
            assert!(
                !deleted.contains(&g),
                "run {run} (kill {kills}): group {g} was deleted (Group::delete returned) but came back with {offsets:?}"
            );
            if committed.contains(&g) {
                assert_eq!(
                    offsets,
                    BTreeMap::from([(0, 2)]),
                    "run {run} (kill {kills}): group {g} committed offset 2 and was being deleted when killed; \
                     after the restart it exists at {offsets:?}: neither its last state nor deleted \
                     (delete removed `offsets` and not `offsets.prev`)"
                );
            }
            // Clean up for the next run (this process is never killed).
            topic.group(&g).unwrap().delete().unwrap();
        }
        broker.close().unwrap();
    }
    assert!(kills >= 10, "only {kills} kills in the time given");
}

fn run_child(dir: &Path, run: u64) {
    let broker = Broker::open(dir).unwrap();
    let topic = broker.topic("t").unwrap();
    println!("go");
    for i in 0.. {
        let name = format!("g{run}x{i}");
        let group = topic.group(&name).unwrap().auto_commit(AutoCommit::Off);
        let mut m = group.join().unwrap();
        m.recv().unwrap();
        m.commit().unwrap();
        m.recv().unwrap();
        m.commit().unwrap();
        println!("committed {name}");
        m.close().unwrap();
        group.delete().unwrap();
        println!("deleted {name}");
    }
}
