//! What the bots ask of the operating system: more open files, and the CPU
//! time and memory of the processes they watch (from /proc). System calls
//! through rustix, so no `unsafe` here.

use std::fs;

/// Raises this process's open-file limit to its hard limit; returns the
/// limit now in force.
pub(crate) fn raise_open_files() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let lim = getrlimit(Resource::Nofile);
    let (current, maximum) = (lim.current.unwrap_or(u64::MAX), lim.maximum);
    if lim.maximum.is_some_and(|max| current < max) {
        let wanted = Rlimit {
            current: maximum,
            maximum,
        };
        if setrlimit(Resource::Nofile, wanted).is_ok() {
            return maximum.unwrap_or(current);
        }
    }
    current
}

/// Clock ticks per second of /proc's CPU times.
fn ticks_per_sec() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}

/// User plus system CPU seconds a process has used, if it exists.
pub(crate) fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses:
    // utime and stime are the 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / ticks_per_sec())
}

/// Context switches (voluntary and not) of every thread of a process so
/// far, if it exists: each is a thread that went to sleep or was put off
/// the CPU, the wake-ups a request costs.
pub(crate) fn context_switches(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let Ok(status) = fs::read_to_string(task.ok()?.path().join("status")) else {
            continue; // a thread that has just ended
        };
        for line in status.lines() {
            if let Some(n) = line
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| line.strip_prefix("nonvoluntary_ctxt_switches:"))
            {
                total += n.trim().parse::<u64>().unwrap_or(0);
            }
        }
    }
    Some(total)
}

/// A `Vm…:` line of `/proc/<pid>/status`, in MiB.
pub(crate) fn memory_mib(pid: u32, field: &str) -> Option<f64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_can_be_watched() {
        let me = std::process::id();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_secs(me).is_some());
        assert!(memory_mib(me, "VmRSS:").expect("rss") > 0.0);
        assert!(cpu_secs(u32::MAX).is_none());
        assert!(raise_open_files() >= 256);
    }

    #[test]
    fn a_process_that_slept_counts_a_context_switch() {
        use std::io::{BufRead, Write};
        use std::process::{Command, Stdio};
        // A shell that has waited for a `sleep` to end (it slept in wait)
        // says so, then waits for a line: single-threaded, so no thread of
        // it ends and takes its count with it (this test process's own
        // threads come and go with the other tests).
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.01; echo slept; read x"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("sh");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("a line");
        assert_eq!(line.trim(), "slept");
        let switches = context_switches(child.id()).expect("the shell");
        assert!(switches >= 1, "{switches}");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(b"done\n").expect("written");
        drop(stdin);
        assert!(child.wait().expect("ended").success());
        assert!(context_switches(u32::MAX).is_none());
    }
}
