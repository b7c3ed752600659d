//! Debian's Mosquitto as a test broker: started on a config file, stopped when dropped.

use super::wait_until;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Mosquitto(Child);

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts Mosquitto on `conf` and waits until each of `ports` (on 127.0.0.1) accepts
/// connections. Its log goes to `conf` with the extension `log`.
pub fn spawn(conf: &Path, ports: &[u16]) -> Mosquitto {
    let bin = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("mosquitto is installed (apt-get install -y mosquitto; .ci/run does this)");
    let log = std::fs::File::create(conf.with_extension("log")).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start mosquitto");
    for port in ports {
        wait_until("mosquitto listening", Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", *port)).is_ok()
        });
    }
    Mosquitto(child)
}
