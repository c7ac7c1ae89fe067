//! What a run does: the groups of bots, their scenarios, and the timeline.
//! Built from the command line or from a TOML scenario file, and handed as
//! JSON to the worker processes a big run is spread over.

use std::{fmt, path::Path, str::FromStr, time::Duration};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What a bot does once it is logged in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Scenario {
    /// Echo requests (cmd 1001) at `rate` per second, or as fast as the
    /// replies come with rate 0.
    Echo,
    /// Rooms of `room_size` bots; each sends chat messages at `rate` and
    /// every member receives them (push latency is measured too).
    Chat,
    /// Connects, logs in and holds the socket, with heartbeats only.
    Idle,
    /// Claims the daily reward, then lists items, reads the balance and
    /// buys a potion in turn, at `rate`.
    Shop,
    /// Echo over HTTP: calls `POST /v1/call/1001` on the call gateway (the
    /// URLs are its http:// addresses) with a JSON body, over one
    /// keep-alive connection per bot, at `rate` or in a closed loop.
    #[serde(rename = "http-echo")]
    #[value(name = "http-echo")]
    HttpEcho,
    /// Chat in resumable sessions whose connections are cut every
    /// `cut_every` seconds (closed, or stalled by a proxy); counts frames
    /// lost, doubled and out of order, requests applied twice, resyncs and
    /// resume latency (PROTOCOL.md §5). Needs signed tokens (--key).
    Flaky,
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Scenario::Echo => "echo",
            Scenario::Chat => "chat",
            Scenario::Idle => "idle",
            Scenario::Shop => "shop",
            Scenario::HttpEcho => "http-echo",
            Scenario::Flaky => "flaky",
        })
    }
}

/// Bots that run one scenario with one set of parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Group {
    #[serde(default)]
    pub name: String,
    pub scenario: Scenario,
    pub bots: u64,
    /// Requests per second per bot; 0 = closed loop (echo, shop).
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Echo body bytes; chat text length.
    #[serde(default = "default_payload")]
    pub payload: usize,
    /// Chat: bots per room.
    #[serde(default = "default_room_size")]
    pub room_size: u64,
    /// Flaky: seconds between cuts of a bot's connection, on average.
    #[serde(default = "default_cut_every")]
    pub cut_every: f64,
}

fn default_cut_every() -> f64 {
    10.0
}

fn default_rate() -> f64 {
    1.0
}
fn default_payload() -> usize {
    100
}
fn default_room_size() -> u64 {
    10
}

/// How bots get their token.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) enum Auth {
    /// `POST <url>/v1/guest` with a device id per bot.
    Guest(String),
    /// Tokens signed here with the login's private key (what `warren
    /// token` does): the PEM text, issuer and audience.
    Key {
        pem: String,
        issuer: String,
        audience: String,
    },
    /// No login frame: for servers that only echo (the benchmark's
    /// direct-echo ceiling).
    None,
    /// Not Warren: a Colyseus echo room (the benchmark's peer), joined
    /// through its HTTP matchmaker at this base URL. Echo only.
    Colyseus(String),
}

/// Everything a worker needs to run its share of the bots.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Plan {
    /// Websocket URLs; bot `i` uses `urls[i % len]`.
    pub urls: Vec<String>,
    pub auth: Auth,
    pub groups: Vec<Group>,
    /// Connections opened per second, over every process (0: at once).
    pub ramp: f64,
    pub warmup: Duration,
    pub duration: Duration,
    pub connect_timeout: Duration,
    /// Heartbeat when a bot has sent nothing for this long.
    pub heartbeat: Duration,
    /// Device ids are `<prefix>-<i>`; signed tokens use uid `first_uid + i`.
    pub id_prefix: String,
    pub first_uid: u64,
    /// Source addresses bot `i` binds: `source_ips[(i / per_ip) % len]`.
    pub source_ips: Vec<std::net::Ipv4Addr>,
    pub per_source_ip: u64,
    /// When the first connection is opened (unix ms): every worker shares
    /// the timeline.
    pub start_unix_ms: u64,
    /// This worker's share: bots with `i % workers == worker`.
    pub worker: u64,
    pub workers: u64,
}

impl Plan {
    pub(crate) fn total_bots(&self) -> u64 {
        self.groups.iter().map(|g| g.bots).sum()
    }

    /// The group of global bot index `i`, and the bot's index within it.
    pub(crate) fn group_of(&self, i: u64) -> Option<(usize, u64)> {
        let mut first = 0;
        for (g, group) in self.groups.iter().enumerate() {
            if i < first + group.bots {
                return Some((g, i - first));
            }
            first += group.bots;
        }
        None
    }

    /// From the start: when the last connection is due.
    pub(crate) fn ramp_time(&self) -> Duration {
        if self.ramp <= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(self.total_bots() as f64 / self.ramp)
        }
    }

    /// The start (a wall-clock time shared by every process) on this
    /// process's monotonic clock.
    pub(crate) fn start_instant(&self) -> tokio::time::Instant {
        let ahead = self
            .start_unix_ms
            .saturating_sub(warren_proto::time::unix_ms());
        tokio::time::Instant::now() + Duration::from_millis(ahead)
    }

    /// From the start: when measuring begins and ends.
    pub(crate) fn window(&self) -> (Duration, Duration) {
        let begin = self.ramp_time() + self.warmup;
        (begin, begin + self.duration)
    }

    pub(crate) fn check(&self) -> anyhow::Result<()> {
        if self.urls.is_empty() {
            bail!("no target URL");
        }
        let http = self
            .groups
            .iter()
            .filter(|g| g.scenario == Scenario::HttpEcho);
        match http.count() {
            0 => self.check_ws_urls()?,
            n if n == self.groups.len() => self.check_http_targets()?,
            _ => bail!(
                "http-echo calls the HTTP gateway, the other scenarios a connector: \
                 run them separately"
            ),
        }
        if self.groups.is_empty() || self.total_bots() == 0 {
            bail!("no bots to run");
        }
        for g in &self.groups {
            if !(g.rate.is_finite() && g.rate >= 0.0) {
                bail!("group {}: rate must be 0 (closed loop) or more", g.name);
            }
            if g.scenario == Scenario::Chat && g.rate == 0.0 {
                bail!(
                    "group {}: chat needs a rate (messages per second per bot)",
                    g.name
                );
            }
            if g.scenario == Scenario::Flaky && !matches!(self.auth, Auth::Key { .. }) {
                bail!(
                    "group {}: flaky bots resume with the same token: sign them (--key)",
                    g.name
                );
            }
            if g.scenario == Scenario::Flaky && (g.rate == 0.0 || g.cut_every < 0.5) {
                bail!(
                    "group {}: flaky needs a rate (chat lines per second) and cut_every of 0.5 s or more",
                    g.name
                );
            }
            if g.room_size == 0 {
                bail!("group {}: room_size must be at least 1", g.name);
            }
            if matches!(self.auth, Auth::Colyseus(_)) && g.scenario != Scenario::Echo {
                bail!(
                    "group {}: against Colyseus only the echo scenario runs",
                    g.name
                );
            }
            if g.payload > 60_000 {
                bail!(
                    "group {}: payload {} is over the default 64 KiB limit of a frame (and of an HTTP call's body)",
                    g.name,
                    g.payload
                );
            }
        }
        if self.duration.is_zero() {
            bail!("the measured window (--duration) must be longer than zero");
        }
        Ok(())
    }
}

impl Plan {
    /// A websocket run: ws:// URLs of connectors.
    fn check_ws_urls(&self) -> anyhow::Result<()> {
        for url in &self.urls {
            if !(url.starts_with("ws://") || url.starts_with("wss://")) {
                bail!("{url}: the target must be a ws:// URL");
            }
            if url.starts_with("wss://") {
                bail!("{url}: wss:// is not supported; point the bots at the connector itself");
            }
        }
        Ok(())
    }

    /// An http-echo run: http:// URLs of call gateways, and tokens.
    fn check_http_targets(&self) -> anyhow::Result<()> {
        for url in &self.urls {
            if !url.starts_with("http://") {
                bail!(
                    "{url}: http-echo calls a call gateway: give its http:// URL \
                     (--url http://127.0.0.1:7006)"
                );
            }
        }
        if !matches!(self.auth, Auth::Key { .. } | Auth::Guest(_)) {
            bail!("http-echo calls need tokens: --key, or a login (--login)");
        }
        Ok(())
    }
}

/// A duration written `30s`, `500ms`, `2m`, `1h` or a bare number of seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (num, unit) = s.split_at(split);
        let n: f64 = num
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (e.g. 30s, 500ms, 2m)"))?;
        let secs = match unit.trim() {
            "" | "s" => n,
            "ms" => n / 1000.0,
            "m" | "min" => n * 60.0,
            "h" => n * 3600.0,
            other => return Err(format!("unknown unit {other:?} in {s:?} (ms, s, m, h)")),
        };
        if !(secs.is_finite() && (0.0..=86_400.0 * 7.0).contains(&secs)) {
            return Err(format!("{s:?} is out of range (0 to a week)"));
        }
        Ok(Span(Duration::from_secs_f64(secs)))
    }
}

impl<'de> Deserialize<'de> for Span {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Num(f64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Num(n) => n.to_string().parse(),
            Raw::Text(t) => t.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// A TOML scenario file: the run's settings (each optional, the command
/// line's otherwise) and its groups.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScenarioFile {
    pub url: Option<UrlList>,
    pub ramp: Option<f64>,
    pub warmup: Option<Span>,
    pub duration: Option<Span>,
    #[serde(rename = "group")]
    pub groups: Vec<Group>,
}

/// One URL or a list of them.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum UrlList {
    One(String),
    Many(Vec<String>),
}

impl ScenarioFile {
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut file: ScenarioFile = toml::from_str(&text)
            .with_context(|| format!("{} is not a scenario file", path.display()))?;
        if file.groups.is_empty() {
            bail!("{}: no [[group]] in the file", path.display());
        }
        for (i, g) in file.groups.iter_mut().enumerate() {
            if g.name.is_empty() {
                g.name = format!("{}-{}", g.scenario, i + 1);
            }
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!("30s".parse::<Span>(), Ok(Span(Duration::from_secs(30))));
        assert_eq!(
            "500ms".parse::<Span>(),
            Ok(Span(Duration::from_millis(500)))
        );
        assert_eq!("2m".parse::<Span>(), Ok(Span(Duration::from_secs(120))));
        assert_eq!("1.5".parse::<Span>(), Ok(Span(Duration::from_millis(1500))));
        assert!("ten".parse::<Span>().is_err());
        assert!("5 parsecs".parse::<Span>().is_err());
        assert!("-1s".parse::<Span>().is_err());
    }

    #[test]
    fn a_scenario_file_mixes_groups() {
        let text = r#"
            url = ["ws://127.0.0.1:7001/ws", "ws://127.0.0.1:7011/ws"]
            duration = "20s"
            warmup = 5
            [[group]]
            scenario = "echo"
            bots = 100
            rate = 10
            [[group]]
            name = "rooms"
            scenario = "chat"
            bots = 50
            rate = 0.5
            room_size = 25
        "#;
        let f: ScenarioFile = toml::from_str(text).expect("parses");
        assert_eq!(f.duration, Some(Span(Duration::from_secs(20))));
        assert_eq!(f.warmup, Some(Span(Duration::from_secs(5))));
        assert_eq!(f.groups.len(), 2);
        assert_eq!(f.groups[0].payload, 100);
        assert_eq!(f.groups[1].room_size, 25);
        assert!(matches!(f.url, Some(UrlList::Many(ref u)) if u.len() == 2));
        let bad = "[[group]]\nscenario = \"echo\"\nbots = 1\nspeed = 3\n";
        let err = toml::from_str::<ScenarioFile>(bad).expect_err("unknown field");
        assert!(err.to_string().contains("speed"), "{err}");
    }

    #[test]
    fn bots_are_numbered_across_groups() {
        let g = |bots| Group {
            name: String::new(),
            scenario: Scenario::Echo,
            bots,
            rate: 1.0,
            payload: 1,
            room_size: 1,
            cut_every: 10.0,
        };
        let plan = Plan {
            urls: vec!["ws://x/ws".into()],
            auth: Auth::None,
            groups: vec![g(3), g(2)],
            ramp: 10.0,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(1),
            heartbeat: Duration::from_secs(10),
            id_prefix: "b".into(),
            first_uid: 1,
            source_ips: Vec::new(),
            per_source_ip: 1,
            start_unix_ms: 0,
            worker: 0,
            workers: 1,
        };
        assert_eq!(plan.group_of(2), Some((0, 2)));
        assert_eq!(plan.group_of(3), Some((1, 0)));
        assert_eq!(plan.group_of(5), None);
        assert_eq!(plan.ramp_time(), Duration::from_millis(500));
        assert_eq!(
            plan.window(),
            (Duration::from_millis(1500), Duration::from_millis(3500))
        );
        plan.check().expect("valid");
    }
}
