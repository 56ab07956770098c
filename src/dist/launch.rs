//! Who this process is in a data-parallel run (torchrun's variables) and `--gpus N` on one
//! machine: one worker process per device, supervised so that one failing stops them all.
use super::watch::Watch;
use anyhow::{bail, Context, Result};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// This process's place in a data-parallel run, from torchrun's variables (RANK, WORLD_SIZE,
/// LOCAL_RANK, MASTER_ADDR, MASTER_PORT), and how long it waits for the others to join.
#[derive(Clone, Debug, PartialEq)]
pub struct Membership {
    pub rank: usize,
    pub world: usize,
    pub local_rank: usize,
    pub master_addr: String,
    pub master_port: u16,
    pub join_timeout: Duration,
    /// How long the run may make no progress before this process gives up (None: never).
    pub stall_timeout: Option<Duration>,
}

/// How long the processes of a run wait for each other to start, unless told (torchrun's
/// rendezvous default).
pub const DEFAULT_JOIN_TIMEOUT: Duration = Duration::from_secs(600);

/// How long a data-parallel run may make no progress in any process, unless told: far above
/// the longest step without any (a snapshot written to a slow disk), far below the group's
/// hours.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(900);

impl Membership {
    /// From the environment; None when RANK is not set (a single-process run).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|k| std::env::var(k).ok())
    }

    /// From `get(name)` (the environment, or a map in tests).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let Some(rank) = get("RANK") else {
            return Ok(None);
        };
        let num = |k: &str, v: Option<String>| -> Result<usize> {
            let v = v.with_context(|| format!("RANK is set but {k} is not; set RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT as torchrun does"))?;
            v.trim()
                .parse()
                .with_context(|| format!("{k}={v} is not a number"))
        };
        let rank = num("RANK", Some(rank))?;
        let world = num("WORLD_SIZE", get("WORLD_SIZE"))?;
        let local_rank = match get("LOCAL_RANK") {
            Some(v) => num("LOCAL_RANK", Some(v))?,
            None => rank,
        };
        let port = num("MASTER_PORT", get("MASTER_PORT"))?;
        if world == 0 || rank >= world {
            bail!("RANK={rank} is not below WORLD_SIZE={world}");
        }
        let Ok(master_port) = u16::try_from(port) else {
            bail!("MASTER_PORT={port} is not a TCP port");
        };
        Ok(Some(Membership {
            rank,
            world,
            local_rank,
            master_addr: get("MASTER_ADDR").unwrap_or_else(|| "127.0.0.1".into()),
            master_port,
            join_timeout: DEFAULT_JOIN_TIMEOUT,
            stall_timeout: Some(DEFAULT_STALL_TIMEOUT),
        }))
    }
}

/// A free TCP port on this machine (for MASTER_PORT).
pub fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").context("no free TCP port")?;
    Ok(l.local_addr()?.port())
}

/// The workers of this machine: `procs` of them, ranks `first_rank..first_rank + procs` of
/// `world`, meeting at `master_addr:master_port` within `join_timeout`; `node`: this machine's
/// number in a run on several (its launcher then watches the run's store, see [`Watch`]).
#[derive(Clone, Debug, PartialEq)]
pub struct LocalWorkers {
    pub procs: usize,
    pub first_rank: usize,
    pub world: usize,
    pub master_addr: String,
    pub master_port: u16,
    pub join_timeout: Duration,
    pub node: Option<usize>,
}

/// Run this executable with `args` as the workers `w` (RANK, LOCAL_RANK, WORLD_SIZE,
/// MASTER_ADDR, MASTER_PORT set as torchrun does) and wait for them. When one exits with an
/// error, the others are stopped (SIGTERM, then SIGKILL after `grace`) and the error names it;
/// when `stop_requested()` turns true (Ctrl-C, SIGTERM here), SIGTERM is passed on to them; when
/// `quit_requested()` does (a second request), they are killed at once and this process exits
/// with status 130, as a process alone does on a second request, or on a first one before
/// training began (the workers die of it then, with nothing to save). On several machines, a
/// failure or a second request here is told to the other machines' launchers, and one told
/// there stops the workers here.
pub fn launch_local(
    w: &LocalWorkers,
    args: &[String],
    grace: Duration,
    stop_requested: impl Fn() -> bool,
    quit_requested: impl Fn() -> bool,
) -> Result<()> {
    let mut children = spawn_workers(w, args, grace)?;
    let watch = w
        .node
        .map(|k| Watch::start(k, &w.master_addr, w.master_port, w.join_timeout));
    let mut forwarded = false;
    loop {
        if quit_requested() {
            // the handler said so; the snapshots on disk are intact
            quit(watch.as_ref(), &mut children, Duration::ZERO, None);
        }
        if stop_requested() && !forwarded {
            signal_all(&children, libc::SIGTERM);
            forwarded = true;
        }
        let (running, failed) = reap(&mut children)?;
        match failed {
            Some((_, s)) if stop_requested() && ended_by_request(&s) => {
                // before its handlers were there: nothing to save yet
                let what = "stopped before training began (nothing to save yet)";
                quit(watch.as_ref(), &mut children, grace, Some(what));
            }
            Some((r, s)) => {
                let what = format!("worker {} of {} exited with {s}", w.first_rank + r, w.world);
                let after = match watch.as_ref().and_then(|wt| wt.report(&what)) {
                    Some(earlier) => format!(" (after {earlier})"),
                    None => String::new(),
                };
                stop_all(&mut children, grace);
                bail!("{what}{after}; stopped the other workers here. The last snapshot is intact: {AGAIN}");
            }
            None if running == 0 => return Ok(()),
            None => {}
        }
        if let Some(why) = watch.as_ref().and_then(Watch::poll) {
            // they may wait in a collective for a peer that is gone: not for long
            stop_all(&mut children, grace.min(Duration::from_secs(5)));
            bail!("{why}; stopped the workers here too. The last snapshot is intact: {AGAIN}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Forget the workers that ended; how many still run, and the first that failed (its local
/// number and status), if any.
fn reap(children: &mut [Option<Child>]) -> Result<(usize, Option<(usize, ExitStatus)>)> {
    let mut running = 0;
    for (r, slot) in children.iter_mut().enumerate() {
        let Some(c) = slot.as_mut() else {
            continue;
        };
        match c.try_wait()? {
            None => running += 1,
            Some(s) => {
                *slot = None;
                if !s.success() {
                    return Ok((running, Some((r, s))));
                }
            }
        }
    }
    Ok((running, None))
}

/// Quit at once with status 130: tell the other machines `what` happened (where the store has
/// answered already: no waiting for one), end the workers (SIGKILL after `grace`), say `what`.
fn quit(
    watch: Option<&Watch>,
    children: &mut [Option<Child>],
    grace: Duration,
    what: Option<&str>,
) -> ! {
    let what_told = what.unwrap_or("stopped at once (a second Ctrl-C or SIGTERM)");
    if let Some(watch) = watch.filter(|wt| wt.connected()) {
        watch.report(what_told);
    }
    stop_all(children, grace);
    if let Some(what) = what {
        eprintln!("fpgan: {what}");
    }
    std::process::exit(130);
}

/// Start the workers `w` (stopping those started if one cannot be).
fn spawn_workers(w: &LocalWorkers, args: &[String], grace: Duration) -> Result<Vec<Option<Child>>> {
    let exe = std::env::current_exe().context("cannot find the fpgan executable")?;
    let mut children: Vec<Option<Child>> = Vec::with_capacity(w.procs);
    for r in 0..w.procs {
        let child = Command::new(&exe)
            .args(args)
            .env("RANK", (w.first_rank + r).to_string())
            .env("LOCAL_RANK", r.to_string())
            .env("WORLD_SIZE", w.world.to_string())
            .env("MASTER_ADDR", &w.master_addr)
            .env("MASTER_PORT", w.master_port.to_string())
            .spawn()
            .with_context(|| format!("cannot start worker {r} ({})", exe.display()));
        match child {
            Ok(c) => children.push(Some(c)),
            Err(e) => {
                stop_all(&mut children, grace);
                return Err(e);
            }
        }
    }
    Ok(children)
}

/// Whether a worker died of a stop request (the terminal's SIGINT, or the SIGTERM passed on),
/// which it takes as one only once training has begun.
fn ended_by_request(s: &ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(s.signal(), Some(libc::SIGINT | libc::SIGTERM))
}

/// How to resume after a failure.
const AGAIN: &str = "run the same command again (on every machine) to resume";

fn signal_all(children: &[Option<Child>], sig: i32) {
    for c in children.iter().flatten() {
        // SAFETY: kill only sends a signal to our own child.
        unsafe { libc::kill(c.id() as i32, sig) };
    }
}

/// SIGTERM every running worker (and SIGCONT, for one that is stopped), SIGKILL those still
/// there after `grace`, and reap them.
fn stop_all(children: &mut [Option<Child>], grace: Duration) {
    signal_all(children, libc::SIGTERM);
    signal_all(children, libc::SIGCONT);
    let t0 = Instant::now();
    while t0.elapsed() < grace {
        let alive = children
            .iter_mut()
            .flatten()
            .filter_map(|c| c.try_wait().ok())
            .filter(Option::is_none)
            .count();
        if alive == 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for c in children.iter_mut().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
