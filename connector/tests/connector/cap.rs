//! Past `max_connections`, a new socket is closed at once (and counted);
//! once a place frees up, a new one gets in.

use std::time::Duration;

use tokio_tungstenite::connect_async;
use warren_connector::ConnectorSettings;
use warren_test_support::eventually;

use crate::helpers::start_with;

#[tokio::test]
async fn connections_past_the_cap_are_refused_until_a_place_frees_up() {
    let mut h = start_with(ConnectorSettings {
        max_connections: 3,
        ..ConnectorSettings::default()
    })
    .await;
    let a = h.player(1).await;
    let _b = h.player(2).await;
    let _c = h.player(3).await;
    assert!(
        connect_async(&h.url).await.is_err(),
        "a fourth socket is refused"
    );
    assert_eq!(h.connector.stats().refused_full, 1);
    drop(a);
    // The place frees once the connector has seen the socket go.
    eventually(
        "the freed place to be given back",
        Duration::from_secs(10),
        async || connect_async(&h.url).await.ok(),
    )
    .await;
}
