//! `sluice devices provision|retire <ID>`: the device lifecycle at the gateway's door, through
//! a running instance's API (`gateway.device_auth`; the token in `SLUICE_TOKEN` needs the
//! admin role). `provision` prints the device's username and new secret once: it is stored
//! only hashed.

use super::ops::ApiArgs;
use anyhow::Context;
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

async fn post(url: &str) -> anyhow::Result<String> {
    let mut request = reqwest::Client::new().post(url);
    let token = std::env::var("SLUICE_TOKEN").ok();
    if let Some(token) = &token {
        request = request.bearer_auth(token.trim());
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("POST {url} (is `sluice run` up, and is --url right?)"))?;
    let status = response.status();
    let body = response.text().await?;
    let hint = match (status.as_u16(), &token) {
        (401, None) => ": the API needs a token: set SLUICE_TOKEN to an admin token",
        (401, Some(_)) => ": the token in SLUICE_TOKEN is not one of the API's tokens",
        (403, _) => ": this needs a token with the admin role in SLUICE_TOKEN",
        _ => "",
    };
    anyhow::ensure!(status.is_success(), "POST {url}: {status}{hint} ({body})");
    Ok(body)
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
            let url = format!("{}/devices/{}/credentials", api.base_url()?, segment(&id));
            let body = post(&url).await?;
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
            post(&format!(
                "{}/devices/{}/retire",
                api.base_url()?,
                segment(&id)
            ))
            .await?;
            println!("retired {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
