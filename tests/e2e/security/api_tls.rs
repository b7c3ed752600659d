//! The management API over HTTPS (`[http.tls]`), with tokens: a client trusting the CA gets
//! answers; plain HTTP gets none; a request without a token is refused; the CLI trusts the
//! private CA only with `--ca-file`, and says so.

use super::certs::Certs;
use super::*;

#[test]
fn the_api_serves_https_with_tokens() {
    let setup = Setup::new();
    let certs = Certs::make(&setup.dir.path().join("certs"));
    let http = format!("127.0.0.1:{}", free_port());
    let extra = format!(
        "[http.tls]\ncert_file = {}\nkey_file = {}\n[[http.tokens]]\nrole = \"viewer\"\nenv = \"TEST_VIEWER_TOKEN\"\n",
        toml_path(&certs.server_cert),
        toml_path(&certs.server_key)
    );
    let config = setup.write_config("sluice.toml", &http, &extra);
    let mut sluice = Logged::start(&config, &[], &[("TEST_VIEWER_TOKEN", "viewer-secret")]);
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&certs.ca).unwrap()).unwrap();
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(ca)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = |path: &str| format!("https://{http}{path}");
    wait_until("https /readyz = 200", Duration::from_secs(120), || {
        client
            .get(url("/readyz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    sluice.wait_log("https=true", Duration::from_secs(5));

    let rules = client
        .get(url("/rules"))
        .bearer_auth("viewer-secret")
        .send()
        .unwrap();
    assert_eq!(rules.status(), 200);
    let anonymous = client.get(url("/rules")).send().unwrap();
    assert_eq!(anonymous.status(), 401, "no token: refused");
    assert!(
        http_get(&http, "/readyz").is_none_or(|(code, _)| code != 200),
        "plain HTTP is not served"
    );
    // The CLI against the private CA: untrusted, the error says to pass --ca-file; with it,
    // the answer is read.
    let https = format!("https://{http}");
    let cli = |extra: &[&str]| {
        let mut args = vec!["scale", "--url", https.as_str()];
        args.extend_from_slice(extra);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .env("SLUICE_TOKEN", "viewer-secret")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &*String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, out) = cli(&[]);
    assert!(
        !ok && out.contains("not trusted") && out.contains("--ca-file"),
        "{out}"
    );
    let (ok, out) = cli(&["--ca-file", certs.ca.to_str().unwrap()]);
    assert!(ok && out.contains("replicas"), "{out}");
    let (ok, out) = cli(&["--ca-file", certs.other_ca.to_str().unwrap()]);
    assert!(
        !ok && out.contains("not trusted"),
        "another CA is not this one: {out}"
    );
    let log = sluice.stop();
    assert!(!log.contains("viewer-secret"));
}
