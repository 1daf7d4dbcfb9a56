//! `berth login` and `berth logout`: registry credentials in Docker's config.json.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use berth_runtime::registry::auth::Login;
use berth_runtime::registry::{Client, Credentials};
use clap::Args;

use crate::app::GlobalOptions;

/// Docker Hub, the default server.
const DEFAULT_SERVER: &str = "docker.io";

/// Arguments of `berth login`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  berth login -u alice localhost:5000\n  echo \"$TOKEN\" | berth login -u alice --password-stdin registry.example.com\n\nThe credentials are checked against the registry first, then kept in $DOCKER_CONFIG/config.json\n(default ~/.docker/config.json, mode 0600), where Docker finds them too."
)]
pub struct LoginArgs {
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (visible to other users in the process list: prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long, conflicts_with = "password")]
    pub password_stdin: bool,
    /// The registry [default: docker.io]
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// Arguments of `berth logout`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  berth logout localhost:5000\n  berth logout")]
pub struct LogoutArgs {
    /// The registry [default: docker.io]
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

/// `https://host/v1/` or `host` to the host.
fn server_host(server: Option<&str>) -> String {
    let s = server.unwrap_or(DEFAULT_SERVER);
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" => DEFAULT_SERVER.to_string(),
        h => h.to_string(),
    }
}

fn prompt(question: &str) -> Result<String> {
    eprint!("{question}");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

/// Logs in.
pub fn login(g: &GlobalOptions, a: LoginArgs) -> Result<ExitCode> {
    let server = server_host(a.server.as_deref());
    let registry = super::pull::registry_options(g);
    let mut creds = Credentials::load(&registry.docker_config)?;
    let interactive = std::io::stdin().is_terminal();
    let username = match a.username {
        Some(u) => u,
        None if !a.password_stdin && a.password.is_none() && interactive => prompt("Username: ")?,
        None => match creds.login(&server).ok().flatten() {
            Some(l) if a.password.is_none() && !a.password_stdin => l.username,
            _ => bail!("no username given: use -u USERNAME"),
        },
    };
    let password = if a.password_stdin {
        let mut p = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut p)
            .context("reading the password from standard input")?;
        p.trim_end_matches(['\r', '\n']).to_string()
    } else if let Some(p) = a.password {
        eprintln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
        p
    } else if interactive {
        let _ = set_echo(false);
        let p = prompt("Password: ");
        let _ = set_echo(true);
        eprintln!();
        p?
    } else {
        match creds.login(&server).ok().flatten() {
            Some(l) if l.username == username => l.password,
            _ => bail!("no password given: use -p PASSWORD or --password-stdin"),
        }
    };
    if username.is_empty() || password.is_empty() {
        bail!("the username and the password must not be empty");
    }
    let login = Login { username, password };
    let client = Client::connect(&server, &registry, Some(login.clone()), Vec::new())?;
    client.check_login()?;
    creds.store(&server, &login)?;
    creds.save()?;
    println!("Login Succeeded");
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(target_os = "linux"))]
fn set_echo(_on: bool) -> std::io::Result<()> {
    // Echo stays on where termios is not at hand; --password-stdin avoids the prompt.
    Ok(())
}

#[cfg(target_os = "linux")]
fn set_echo(on: bool) -> std::io::Result<()> {
    use nix::sys::termios::{LocalFlags, SetArg, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut t = tcgetattr(&stdin)?;
    t.local_flags.set(LocalFlags::ECHO, on);
    tcsetattr(&stdin, SetArg::TCSANOW, &t)?;
    Ok(())
}

/// Logs out.
pub fn logout(g: &GlobalOptions, a: LogoutArgs) -> Result<ExitCode> {
    let server = server_host(a.server.as_deref());
    let registry = super::pull::registry_options(g);
    let mut creds = Credentials::load(&registry.docker_config)?;
    if creds.erase(&server)? {
        creds.save()?;
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(ExitCode::SUCCESS)
}
