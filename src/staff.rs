//! `warren config-admin add-user`: staff accounts of the config admin page.

#![allow(clippy::print_stdout)]

use anyhow::Context as _;

use crate::{
    parts::{config_store, shown},
    settings::Settings,
};

/// A strong password to show once: 15 random characters from an alphabet
/// without look-alikes (no 0/O, 1/l/I).
fn generated_password() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 15];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// `warren config-admin add-user`.
pub(crate) async fn add_staff(
    settings: &Settings,
    username: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    warren_config::web::check_username(username).map_err(anyhow::Error::msg)?;
    let (password, generated) = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the password from standard input")?;
        (line.trim_end_matches(['\r', '\n']).to_owned(), false)
    } else {
        (generated_password(), true)
    };
    warren_config::web::check_password(&password).map_err(anyhow::Error::msg)?;
    let hash = tokio::task::spawn_blocking(move || {
        warren_config::web::hash_password(&password).map(|h| (h, password))
    })
    .await?
    .map_err(anyhow::Error::msg)?;
    let (store, _) = config_store(settings).await?;
    let created = store.put_staff(username, &hash.0).await?;
    store.close().await;
    let verb = if created {
        "created staff account"
    } else {
        "set a new password for"
    };
    if generated {
        println!(
            "warren: {verb} {username}; password (shown once): {}",
            hash.1
        );
    } else {
        println!("warren: {verb} {username}");
    }
    println!(
        "warren: sign in at http://{}/login",
        shown(settings.config_svc.admin_listen)
    );
    Ok(())
}
