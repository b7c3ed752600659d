//! `sluice devices provision|retire <ID>`: the device lifecycle at the gateway's door, through
//! a running instance's API (`gateway.device_auth`; the token in `SLUICE_TOKEN` needs the
//! admin role). `provision` prints the device's username and new secret once: it is stored
//! only hashed.

use super::api::{ApiArgs, Role};
use reqwest::Method;
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum DevicesCommand {
    /// Make a new login for a device (any earlier secret stops working); prints it once.
    Provision {
        /// The device id: its MQTT username, and the topic level that names it.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
        /// Print the JSON answer instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Refuse the device from now on and close its connections.
    Retire {
        /// The device id.
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Percent-encodes a device id for a URL path segment.
fn segment(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

pub async fn exec(command: DevicesCommand) -> anyhow::Result<ExitCode> {
    match command {
        DevicesCommand::Provision { id, api, json } => {
            let path = format!("/devices/{}/credentials", segment(&id));
            let body = api.call(Method::POST, &path, Role::Admin).await?;
            if json {
                println!("{body}");
            } else {
                let v: serde_json::Value = serde_json::from_str(&body)?;
                println!("device    {}", v["device"].as_str().unwrap_or_default());
                println!("username  {}", v["username"].as_str().unwrap_or_default());
                println!("secret    {}", v["secret"].as_str().unwrap_or_default());
                println!("(the secret is shown only now: the gateway keeps a salted hash)");
            }
        }
        DevicesCommand::Retire { id, api } => {
            let path = format!("/devices/{}/retire", segment(&id));
            api.call(Method::POST, &path, Role::Admin).await?;
            println!("retired {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
