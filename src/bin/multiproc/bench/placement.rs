//! Where the two processes of a scenario run: unpinned, both on one CPU, or one per CPU.

use rustix::process::Pid;
use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

/// The CPU placement of a measuring process (the parent) and its peer (the child).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Placement {
    /// Wherever the scheduler puts them.
    Unpinned,
    /// Both on the first usable CPU.
    SameCpu,
    /// The parent on the first usable CPU, the child on the second.
    TwoCpus,
}

impl Placement {
    /// The name in the table and the JSON file, and on the Python script's command lines.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Unpinned => "unpinned",
            Placement::SameCpu => "same CPU",
            Placement::TwoCpus => "two CPUs",
        }
    }

    /// A one-word form (for the Python script's requests).
    pub fn word(self) -> &'static str {
        match self {
            Placement::Unpinned => "unpinned",
            Placement::SameCpu => "same",
            Placement::TwoCpus => "two",
        }
    }

    /// The placements a latency scenario runs in on this machine (one per CPU needs two).
    pub fn all() -> Vec<Placement> {
        if usable().len() >= 2 {
            vec![Placement::Unpinned, Placement::SameCpu, Placement::TwoCpus]
        } else {
            vec![Placement::Unpinned, Placement::SameCpu]
        }
    }

    /// The CPUs of the parent and of the child (`None`: any usable CPU).
    pub fn cpus(self) -> (Option<usize>, Option<usize>) {
        let cpus = usable();
        match self {
            Placement::Unpinned => (None, None),
            Placement::SameCpu => (Some(cpus[0]), Some(cpus[0])),
            Placement::TwoCpus => (Some(cpus[0]), cpus.get(1).copied()),
        }
    }
}

/// The CPUs this program may use, read once before any pinning.
pub fn usable() -> &'static [usize] {
    static CPUS: std::sync::OnceLock<Vec<usize>> = std::sync::OnceLock::new();
    CPUS.get_or_init(|| {
        let set = sched_getaffinity(None).unwrap_or_else(|_| {
            let mut all = CpuSet::new();
            all.set(0);
            all
        });
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect();
        if cpus.is_empty() { vec![0] } else { cpus }
    })
}

fn set_of(cpu: Option<usize>) -> CpuSet {
    let mut set = CpuSet::new();
    match cpu {
        Some(c) => set.set(c),
        None => usable().iter().for_each(|&c| set.set(c)),
    }
    set
}

/// Pins the calling thread (and what it starts afterwards) to `cpu`, or lets it run anywhere.
pub fn pin_self(cpu: Option<usize>) {
    // An affinity that cannot be set leaves the process unpinned: the figure is still a
    // figure, and the JSON file records the placement that was asked for.
    let _ = sched_setaffinity(None, &set_of(cpu));
}

/// Pins the (single-threaded or not yet threaded) process `pid` to `cpu`.
pub fn pin_pid(pid: u32, cpu: Option<usize>) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        let _ = sched_setaffinity(Some(pid), &set_of(cpu));
    }
}

/// Starts a child with `start` in `placement`: the calling thread runs on the child's CPU while
/// the child is created (so that it inherits it), the child is pinned again by pid (for
/// children made by another thread), then the calling thread moves to the parent's CPU.
/// Call [`unpin`] when the measurement is over.
pub fn start_placed<T>(
    placement: Placement,
    start: impl FnOnce() -> T,
    pid: impl Fn(&T) -> u32,
) -> T {
    let (parent, child) = placement.cpus();
    pin_self(child);
    let started = start();
    pin_pid(pid(&started), child);
    pin_self(parent);
    started
}

/// Lets the calling thread run on every usable CPU again.
pub fn unpin() {
    pin_self(None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use multiproc::{Process, StartMethod};

    fn my_cpus(_: ()) -> Vec<usize> {
        let set = sched_getaffinity(None).expect("affinity");
        (0..CpuSet::MAX_CPU).filter(|&c| set.is_set(c)).collect()
    }

    /// The child runs where the placement says, and so does the parent until `unpin`.
    #[test]
    fn a_placed_child_runs_on_its_cpu() {
        let cpus = usable().to_vec();
        for placement in Placement::all() {
            let (parent, child) = placement.cpus();
            let p = start_placed(
                placement,
                || {
                    Process::builder()
                        .method(StartMethod::Fork)
                        .start(my_cpus, ())
                        .expect("start")
                },
                Process::pid,
            );
            let mine = my_cpus(());
            let theirs = p.join().expect("join");
            unpin();
            assert_eq!(
                theirs,
                child.map_or(cpus.clone(), |c| vec![c]),
                "{placement:?}"
            );
            assert_eq!(
                mine,
                parent.map_or(cpus.clone(), |c| vec![c]),
                "{placement:?}"
            );
        }
        assert_eq!(my_cpus(()), cpus);
    }
}
