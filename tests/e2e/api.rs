//! The management API's roles: each endpoint without a token, with a viewer token and with
//! an admin token (and an operator for the operator actions) gives 401/403/2xx as specified.
//! `/metrics` passes `promtool check metrics` and honours `[metrics]` block patterns.

use crate::common::*;

const OPS: &str = r#"
[[rules]]
name = "hot"
sql = "SELECT device, temperature FROM telemetry WHERE temperature > 80"
actions = ["pager"]

[[rules]]
name = "reports"
sql = "SELECT model, version FROM telemetry WHERE is_defined(version)"
actions = ["updates"]

[sinks.pager]
type = "alert"
destinations = [{ type = "log" }]

[sinks.updates]
type = "compliance"
updates = [{ id = "u1", version = "1.0", models = ["cam"] }]

[metrics]
block = ["sluice_http_*"]
"#;

const TOKENS: &str = r#"
[[http.tokens]]
role = "viewer"
env = "TEST_VIEWER_TOKEN"
[[http.tokens]]
role = "operator"
env = "TEST_OPERATOR_TOKEN"
[[http.tokens]]
role = "admin"
file = "admin.token"
"#;

#[test]
fn every_endpoint_answers_401_403_or_200_by_role() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, OPS);
    let text = std::fs::read_to_string(&cfg).unwrap();
    // `[[http.tokens]]` must follow `[http]`'s keys: insert it before `[router]`.
    std::fs::write(
        &cfg,
        text.replacen("[router]", &format!("{TOKENS}\n[router]"), 1),
    )
    .unwrap();
    std::fs::write(setup.dir.path().join("admin.token"), "admin-secret\n").unwrap();
    let env = [
        ("TEST_VIEWER_TOKEN", "viewer-secret"),
        ("TEST_OPERATOR_TOKEN", "operator-secret"),
    ];
    let sluice = Sluice::start_with_env(&cfg, &[], Some(http.clone()), &env);
    let (viewer, operator, admin) = (
        Some("viewer-secret"),
        Some("operator-secret"),
        Some("admin-secret"),
    );
    let call = |method: &str, path: &str, token: Option<&str>, body: &str| {
        http_call(&http, method, path, token, body)
            .unwrap_or_else(|| panic!("{method} {path}: no answer"))
            .0
    };

    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(call("GET", path, None, ""), 200, "{path} is open");
    }
    for path in [
        "/rules",
        "/alerts",
        "/compliance",
        "/compliance/catalog",
        "/scaling",
    ] {
        assert_eq!(
            call("GET", path, None, ""),
            401,
            "GET {path} without a token"
        );
        assert_eq!(
            call("GET", path, Some("wrong"), ""),
            401,
            "GET {path} bad token"
        );
        assert_eq!(call("GET", path, viewer, ""), 200, "GET {path} as viewer");
        assert_eq!(call("GET", path, admin, ""), 200, "GET {path} as admin");
    }
    // (method, path, body, the lowest role allowed, its success status)
    let actions = [
        ("POST", "/rules/reload", "", "operator", 200),
        (
            "POST",
            "/alerts/ack",
            r#"{"key":"hot/none"}"#,
            "operator",
            404,
        ),
        ("POST", "/devices/d9/retire", "", "admin", 204),
        ("PUT", "/devices/d9", r#"{"site":"x"}"#, "admin", 204),
        (
            "PUT",
            "/compliance/catalog/u2",
            r#"{"version":"2.0","models":["cam"]}"#,
            "admin",
            204,
        ),
        ("DELETE", "/compliance/catalog/u2", "", "admin", 204),
    ];
    for (method, path, body, lowest, ok) in actions {
        assert_eq!(
            call(method, path, None, body),
            401,
            "{method} {path} without a token"
        );
        assert_eq!(
            call(method, path, viewer, body),
            403,
            "{method} {path} as viewer"
        );
        let as_operator = if lowest == "operator" { ok } else { 403 };
        assert_eq!(
            call(method, path, operator, body),
            as_operator,
            "{method} {path} as operator"
        );
    }
    for (method, path, body, _, ok) in actions {
        // The DELETE ran above only if the PUT did: both as admin, in order.
        assert_eq!(
            call(method, path, admin, body),
            ok,
            "{method} {path} as admin"
        );
    }

    // The scaling gauges appear after the first sample.
    wait_until(
        "scaling gauges exported",
        std::time::Duration::from_secs(30),
        || http_get(&http, "/metrics").is_some_and(|(_, m)| m.contains("sluice_kafka_group_lag")),
    );
    let metrics = http_get(&http, "/metrics").unwrap().1;
    assert!(
        !metrics.contains("sluice_http_unauthorized_total"),
        "blocked family exported"
    );
    promtool_check(&metrics);

    // The CLI finds the API in the config and names the variable the token goes in.
    let config = cfg.to_str().unwrap();
    let scale = |token| {
        let (code, out) = sluice_cli_token(&["scale", "--config", config], token);
        (code == 0, out)
    };
    let (ok, out) = scale(None);
    assert!(!ok, "{out}");
    assert!(
        out.contains("401") && out.contains("set SLUICE_TOKEN"),
        "{out}"
    );
    let (ok, out) = scale(viewer);
    assert!(ok && out.contains("replicas"), "{out}");
    assert!(!out.contains("viewer-secret"), "{out}");
    // The load generator says why it cannot show lag, instead of a silent '-'.
    let url = format!("http://{http}");
    let loadtest = [
        "loadtest",
        "--broker",
        &setup.mqtt,
        "--profile",
        "steady:20:2",
    ];
    let args = [&loadtest[..], &["--devices", "2", "--sluice-url", &url]].concat();
    let (_, text) = sluice_cli_token(&args, None);
    assert!(text.contains("set SLUICE_TOKEN"), "{text}");
    sluice.stop();
}

/// `promtool check metrics` on the exposition.
fn promtool_check(metrics: &str) {
    promtool(&["check", "metrics"], metrics);
}

/// #24.12: a client that trickles its request headers (slowloris) is cut off after the
/// header-read timeout instead of holding the socket for good; others are served meanwhile.
#[test]
fn g12_a_connection_that_never_finishes_its_headers_is_closed() {
    use std::io::{Read, Write};
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let mut slow = std::net::TcpStream::connect(&http).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .unwrap();
    assert_eq!(http_get(&http, "/healthz").map(|(c, _)| c), Some(200));
    // Blocks until the server closes the connection (or answers 408), at most 30 s.
    slow.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let started = std::time::Instant::now();
    let mut buf = [0u8; 512];
    let got = slow.read(&mut buf);
    let text = match got {
        Ok(n) => String::from_utf8_lossy(&buf[..n]).to_string(),
        Err(e) => panic!("still open after {:?}: {e}", started.elapsed()),
    };
    assert!(text.is_empty() || text.contains("408"), "{text}");
    sluice.stop();
}

/// #24.12: the API takes at most 256 connections at once. Past that a new socket is closed as
/// it is accepted (and counted), so idle sockets cannot take the process's file descriptors;
/// once they go, requests are answered again.
#[test]
fn g12_the_api_closes_connections_past_its_limit() {
    use std::io::{Read, Write};
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    // Idle sockets that send nothing (the header-read timeout frees them after 10 s: the
    // checks below run well within that).
    let idle: Vec<std::net::TcpStream> = (0..270)
        .map(|_| std::net::TcpStream::connect(&http).unwrap())
        .collect();
    let answered = || {
        let mut s = std::net::TcpStream::connect(&http).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(3)))
            .ok()?;
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        Some(text)
    };
    // The server takes the queued sockets in its own time (a task each): wait until it holds
    // every slot, then a new request gets no answer.
    wait_until(
        "a request past the limit goes unanswered",
        std::time::Duration::from_secs(5),
        || !answered().unwrap_or_default().contains("200 OK"),
    );
    drop(idle);
    wait_until("answered again", std::time::Duration::from_secs(10), || {
        answered().is_some_and(|t| t.contains("200 OK"))
    });
    let refused = metric_value(
        &http_get(&http, "/metrics").unwrap().1,
        "sluice_http_connections_refused_total",
        &[],
    );
    assert!(refused.unwrap_or(0.0) >= 14.0, "{refused:?}");
    sluice.stop();
}
