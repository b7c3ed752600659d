//! #24.15: the open loopback API could be driven by any web page the operator visits — a
//! form POST retires a device, a rebound DNS name reads everything. Against the real server:
//! a cross-origin write and a foreign Host are refused; the CLI's and the console's requests
//! still pass.

use crate::common::*;
use std::time::Duration;

fn send(http: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client.request(method, format!("http://{http}{path}"));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    request.send().unwrap().status().as_u16()
}

#[test]
fn g15_a_web_page_cannot_drive_the_open_loopback_api() {
    let setup = Setup::new();
    let http = format!("127.0.0.1:{}", free_port());
    let cfg = setup.write_config("sluice.toml", &http, ALL_TO_PARQUET);
    let sluice = Sluice::start(&cfg, &[], Some(http.clone()));
    let form = [
        ("origin", "https://evil.example"),
        ("content-type", "application/x-www-form-urlencoded"),
        ("sec-fetch-site", "cross-site"),
    ];
    assert_eq!(
        send(&http, "POST", "/devices/d1/retire", &form),
        403,
        "form POST"
    );
    assert_eq!(
        send(&http, "POST", "/rules/reload", &form[..1]),
        403,
        "Origin only"
    );
    // DNS rebinding: the page's own name in Host, the address 127.0.0.1.
    assert_eq!(
        send(&http, "GET", "/compliance", &[("host", "evil.example")]),
        403
    );
    // The console (same origin) and the CLI (no Origin) are served.
    let same = format!("http://{http}");
    assert_ne!(
        send(&http, "POST", "/rules/reload", &[("origin", &same)]),
        403
    );
    assert_eq!(send(&http, "POST", "/rules/reload", &[]), 200);
    assert_eq!(
        send(&http, "GET", "/healthz", &[("host", "localhost")]),
        200
    );
    let metrics = http_get(&http, "/metrics").unwrap().1;
    assert!(
        metric_value(&metrics, "sluice_http_browser_refused_total", &[]) >= Some(3.0),
        "counted"
    );
    sluice.stop();
}
