//! A big run spread over processes: the parent starts this same program
//! with `--worker` once per share and merges the JSON lines they write.

use std::{
    io::{BufRead, BufReader, Write},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};

use crate::{
    plan::Plan,
    run_share,
    stats::{Snapshot, Tally},
    sys,
};

/// What a worker process writes, one JSON object per line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Line {
    Snapshot(Snapshot),
    Tally(Tally),
}

/// Worker mode: the plan on standard input, JSON lines on standard output.
pub(crate) async fn worker_main() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin().read_line(&mut input)?;
    let plan: Plan = serde_json::from_str(&input).context("the plan on standard input")?;
    sys::raise_open_files();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            let _ = stop_tx.send(true);
        }
    });
    let write = |line: &Line| {
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer(&mut out, line);
        let _ = out.write_all(b"\n");
        let _ = out.flush();
    };
    let (tally, _) = run_share(plan, stop_rx, move |s| write(&Line::Snapshot(s))).await?;
    write(&Line::Tally(tally));
    Ok(())
}

/// Spreads the plan over child processes (this same program in worker
/// mode) and merges what they report.
pub(crate) async fn run_children(
    plan: &Plan,
    procs: u64,
    snaps: mpsc::Sender<(u64, Snapshot)>,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Tally> {
    let exe = std::env::current_exe().context("finding this program to start workers")?;
    let (_, end) = plan.window();
    let mut handles = Vec::new();
    for k in 0..procs {
        let mut share = plan.clone();
        share.worker = k;
        let mut child = Command::new(&exe)
            .arg("--worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting a worker process")?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        writeln!(stdin, "{}", serde_json::to_string(&share)?)?;
        drop(stdin);
        let stdout = child.stdout.take().context("worker stdout")?;
        let snaps = snaps.clone();
        handles.push(std::thread::spawn(move || -> anyhow::Result<Tally> {
            let mut tally = None;
            for line in BufReader::new(stdout).lines() {
                match serde_json::from_str::<Line>(&line?) {
                    Ok(Line::Snapshot(s)) => {
                        let _ = snaps.try_send((k, s));
                    }
                    Ok(Line::Tally(t)) => tally = Some(t),
                    Err(e) => bail!("worker {k} wrote something unexpected: {e}"),
                }
            }
            let status = child.wait()?;
            match tally {
                Some(t) => Ok(t),
                None => bail!("worker {k} ended ({status}) without a report"),
            }
        }));
    }
    drop(snaps);
    // Children stop on their own at the end of the window; Ctrl-C reaches
    // them too (same process group).
    let deadline = Instant::now() + end + Duration::from_secs(60);
    let mut total = Tally::default();
    for h in handles {
        loop {
            if h.is_finished() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = stop.changed() => {}
            }
            if Instant::now() > deadline {
                bail!("a worker process did not finish a minute after the window");
            }
        }
        let tally = h
            .join()
            .map_err(|_| anyhow::anyhow!("a worker reader panicked"))??;
        total.merge(tally);
    }
    Ok(total)
}
