//! The settings: defaults, layering, checks.

use super::*;

#[test]
fn passwords_are_redacted() {
    // How a URL is shown without its password: warren-kit's SecretUrl tests.
    let settings = Settings {
        bus: BusSettings {
            amqp_url: Some("amqp://u:hunter2@h/v".into()),
            ..BusSettings::default()
        },
        gold: GoldSettings {
            database: Some("postgres://u:hunter2@h/gold".into()),
            ..GoldSettings::default()
        },
        config_svc: ConfigSettings {
            database: Some("postgres://u:hunter2@h/config".into()),
            ..ConfigSettings::default()
        },
        ..Settings::default()
    };
    assert!(!format!("{settings:?}").contains("hunter2"));
    figment::Jail::expect_with(|jail| {
        jail.set_env("WARREN_GAME__ADMIN_TOKEN", "s3cret-token");
        let settings = load(None).map_err(|e| e.to_string())?;
        let token = settings.game.admin_token.as_ref().expect("set");
        assert_eq!(secrecy::ExposeSecret::expose_secret(token), "s3cret-token");
        assert!(!format!("{settings:?}").contains("s3cret-token"));
        Ok(())
    });
}

#[test]
fn file_then_environment_override_defaults() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "w.toml",
            "[connector]\nidle_timeout_ms = 5000\nlisten = \"127.0.0.1:9000\"\n[game]\nmailbox = 7\n",
        )?;
        jail.set_env("WARREN_GAME__MAILBOX", "9");
        jail.set_env("WARREN_BUS__NAMESPACE", "staging");
        let s = load(Some(std::path::Path::new("w.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(s.connector.idle_timeout_ms, Duration::from_millis(5000));
        assert_eq!(s.connector.listen.port(), 9000);
        assert_eq!(s.game.mailbox, 9);
        assert_eq!(s.bus.namespace, "staging");
        assert_eq!(s.connector.login_timeout_ms, Duration::from_millis(10_000));
        Ok(())
    });
}

#[test]
fn durations_are_a_number_of_the_named_unit_or_words() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("w.toml", "[connector]\nidle_timeout_ms = \"1m 30s\"\n")?;
        jail.set_env("WARREN_GAME__STUCK_THRESHOLD_MS", "750");
        jail.set_env("WARREN_CONFIG_SVC__SESSION_IDLE_S", "2h");
        let s = load(Some(std::path::Path::new("w.toml"))).map_err(|e| e.to_string())?;
        assert_eq!(s.connector.idle_timeout_ms, Duration::from_secs(90));
        assert_eq!(s.game.stuck_threshold_ms, Duration::from_millis(750));
        assert_eq!(s.config_svc.session_idle_s, Duration::from_secs(7200));
        jail.set_env("WARREN_GAME__STUCK_THRESHOLD_MS", "soon");
        let e = load(Some(std::path::Path::new("w.toml")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"soon\" is not a duration"), "{e}");
        assert!(
            e.to_lowercase().contains("game.stuck_threshold_ms"),
            "the error names the setting: {e}"
        );
        Ok(())
    });
}

#[test]
fn the_bus_kind_follows_the_url_unless_set_and_refuses_what_it_cannot_keep() {
    let mut bus = BusSettings::default();
    assert_eq!(bus.transport(), Ok(BusKind::Memory));
    bus.amqp_url = Some("amqp://h".into());
    assert_eq!(bus.transport(), Ok(BusKind::Amqp));
    bus.kind = Some(BusKind::Memory);
    assert_eq!(bus.transport(), Ok(BusKind::Memory));
    bus.durable = true;
    assert!(bus.transport().unwrap_err().contains("acknowledgements"));
    bus.kind = Some(BusKind::Amqp);
    assert_eq!(bus.transport(), Ok(BusKind::Amqp));
    bus.amqp_url = None;
    assert!(bus.transport().unwrap_err().contains("amqp_url"));
    figment::Jail::expect_with(|jail| {
        jail.set_env("WARREN_BUS__KIND", "amqp");
        assert_eq!(
            load(None).map_err(|e| e.to_string())?.bus.kind,
            Some(BusKind::Amqp)
        );
        jail.set_env("WARREN_BUS__KIND", "carrier-pigeon");
        assert!(load(None).is_err());
        Ok(())
    });
}

#[test]
fn the_zmq_bus_takes_its_addresses_from_the_environment_and_refuses_what_it_cannot_keep() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("WARREN_BUS__KIND", "zmq");
        jail.set_env("WARREN_BUS__SHARDS", "2");
        jail.set_env("WARREN_BUS__ZMQ__LAYOUT", "push-server");
        jail.set_env(
            "WARREN_BUS__ZMQ__REQUESTS",
            r#"["tcp://10.0.0.1:7101", "tcp://10.0.0.2:7101"]"#,
        );
        let mut bus = load(None).map_err(|e| e.to_string())?.bus;
        assert_eq!(bus.transport(), Ok(BusKind::Zmq));
        let zmq = bus.zmq(1);
        assert_eq!(zmq.layout, ZmqLayout::PushServer);
        assert_eq!(zmq.requests[1], "tcp://10.0.0.2:7101");
        assert_eq!(zmq.shard, 1);
        bus.shards = 3;
        let m = bus.transport().unwrap_err();
        assert!(m.contains("one per shard"), "{m}");
        bus.shards = 2;
        bus.durable = true;
        let m = bus.transport().unwrap_err();
        assert!(m.contains("at most once"), "{m}");
        jail.set_env("WARREN_BUS__ZMQ__LAYOUT", "carrier-pigeon");
        assert!(load(None).is_err());
        Ok(())
    });
}

#[test]
fn unknown_keys_are_errors() {
    figment::Jail::expect_with(|jail| {
        jail.create_file("w.toml", "[connector]\nidle_timeot_ms = 5000\n")?;
        assert!(load(Some(std::path::Path::new("w.toml"))).is_err());
        jail.set_env("WARREN_IDLE_TIMEOUT", "5");
        assert!(load(None).is_err());
        Ok(())
    });
}

#[test]
fn the_command_line_s_own_variables_are_not_settings() {
    figment::Jail::expect_with(|jail| {
        jail.set_env("WARREN_CONFIG", "w.toml");
        jail.set_env("WARREN_READY_FILE", "ready.json");
        load(None).map_err(|e| e.to_string())?;
        Ok(())
    });
}

#[test]
fn a_cluster_is_its_list_of_nodes() {
    let mut bus = BusSettings {
        amqp_urls: vec!["amqp://h1".into(), "amqp://h2".into(), "amqp://h1".into()],
        ..BusSettings::default()
    };
    assert_eq!(bus.transport(), Ok(BusKind::Amqp));
    let first = bus.amqp_first().unwrap().clone();
    assert_eq!(first.expose(), "amqp://h1");
    let amqp = bus.amqp(&first, "t", 0);
    let nodes: Vec<&str> = amqp.nodes.iter().map(SecretUrl::expose).collect();
    assert_eq!(nodes, ["amqp://h2"], "the others, once each");
    // amqp_url, when set, comes first; the list's nodes after it.
    bus.amqp_url = Some("amqp://h0".into());
    let first = bus.amqp_first().unwrap().clone();
    assert_eq!(first.expose(), "amqp://h0");
    let amqp = bus.amqp(&first, "t", 0);
    let nodes: Vec<&str> = amqp.nodes.iter().map(SecretUrl::expose).collect();
    assert_eq!(nodes, ["amqp://h1", "amqp://h2"]);
}
