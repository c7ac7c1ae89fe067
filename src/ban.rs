//! `warren ban`: an operator bans a player (or lifts a ban). gold records
//! it (and who, in an audit row), ends the player's sign-ins and refuses
//! new ones; then the game's admin endpoint tells every connector to
//! refuse the player's tokens and kick its socket (`banned`).

#![allow(clippy::print_stdout)]

use std::time::Duration;

use anyhow::{Context as _, bail};
use warren_proto::gold::{BanRequest, LiftBanRequest};

use crate::{admin_client, cli::BanArgs, keys, settings::Settings};

/// `--until`: unix seconds, or a duration from now.
fn until(raw: &str) -> anyhow::Result<i64> {
    let secs = match raw.trim().parse::<u64>() {
        Ok(at) => at,
        Err(_) => {
            let d = warren_kit::duration::parse_words(raw).map_err(anyhow::Error::msg)?;
            keys::unix_now() + d.as_secs()
        }
    };
    i64::try_from(secs).context("--until is too far away")
}

pub(crate) fn ban(settings: &Settings, args: BanArgs) -> anyhow::Result<()> {
    let by = args
        .by
        .clone()
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "warren-cli".to_owned());
    let until_s = args.until.as_deref().map(until).transpose()?;
    let gold = settings.gold.url.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let recorded = runtime.block_on(async {
        let client = crate::parts::gold(settings, &gold, Duration::from_secs(10))?;
        let reply = if args.lift {
            let req = LiftBanRequest { uid: args.uid, by };
            client.client().lift_ban(client.request(req)).await
        } else {
            let req = BanRequest {
                uid: args.uid,
                reason: args.reason.clone().unwrap_or_default(),
                until_s: until_s.unwrap_or(0),
                by,
            };
            client.client().ban(client.request(req)).await
        };
        reply
            .map(|r| r.into_inner())
            .map_err(|s| anyhow::anyhow!("gold at {gold} refused: {}", s.message()))
    })?;
    if args.lift {
        let outcome = serde_json::json!({"uid": args.uid, "lifted": recorded.changed});
        println!("{outcome}");
        return Ok(());
    }
    let now = warren_proto::time::unix_ms();
    let revoke = serde_json::json!({"uid": args.uid, "reason": "banned", "not_before_ms": now});
    let (status, reply) = admin_client::post_game(settings, args.admin, "/v1/revoke", revoke)?;
    let outcome = serde_json::json!({
        "uid": args.uid,
        "banned": true,
        "until": until_s,
        "sessions_ended": recorded.sessions_ended,
        "kicked": status.is_success(),
    });
    println!("{outcome}");
    if !status.is_success() {
        bail!(
            "the ban is recorded (no sign-in or refresh works), but the game's admin endpoint \
             refused to kick the player ({status}: {reply}); run the command again to retry"
        );
    }
    Ok(())
}
