//! `tkctl exec`: a command in a container, with stdin and a TTY when asked.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{Ctx, Res};

#[derive(clap::Args)]
pub struct ExecArgs {
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    tty: bool,
    #[arg(short = 'c', long)]
    container: Option<String>,
    pod: String,
    /// The command (after `--`, or directly after the pod as older kubectl accepted).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    command: Vec<String>,
}

/// The terminal's size (columns, rows), if stdout is one.
fn terminal_size() -> Option<(u16, u16)> {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes a winsize into the pointer, which outlives the call.
    let r = unsafe { libc::ioctl(1, libc::TIOCGWINSZ, &mut ws) };
    (r == 0 && ws.ws_col > 0).then_some((ws.ws_col, ws.ws_row))
}

/// Puts the local terminal in raw mode until dropped.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter() -> Self {
        let stdin = std::io::stdin();
        let Ok(saved) = nix::sys::termios::tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        nix::sys::termios::cfmakeraw(&mut raw);
        let _ = nix::sys::termios::tcsetattr(&stdin, nix::sys::termios::SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

pub async fn exec(ctx: &Ctx, a: ExecArgs) -> Res<u8> {
    use std::io::IsTerminal;
    let tty = a.tty && std::io::stdin().is_terminal();
    if a.tty && !tty {
        eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
    }
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let name = a.pod.strip_prefix("pod/").unwrap_or(&a.pod).to_string();
    let mut ap = AttachParams::default()
        .stdin(a.stdin)
        .stdout(true)
        .stderr(!tty)
        .tty(tty);
    if let Some(c) = &a.container {
        ap = ap.container(c.clone());
    }
    let mut proc = pods
        .exec(&name, a.command.clone(), &ap)
        .await
        .map_err(|e| ctx.error(e))?;
    let _raw = tty.then(RawMode::enter);
    if tty {
        if let (Some(mut sizes), Some((w, h))) = (proc.terminal_size(), terminal_size()) {
            let _ = futures::SinkExt::send(
                &mut sizes,
                kube::api::TerminalSize {
                    width: w,
                    height: h,
                },
            )
            .await;
            tokio::spawn(async move {
                let Ok(mut winch) =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
                else {
                    return;
                };
                while winch.recv().await.is_some() {
                    if let Some((w, h)) = terminal_size() {
                        if futures::SinkExt::send(
                            &mut sizes,
                            kube::api::TerminalSize {
                                width: w,
                                height: h,
                            },
                        )
                        .await
                        .is_err()
                        {
                            return;
                        }
                    }
                }
            });
        }
    }
    if let Some(mut input) = proc.stdin() {
        tokio::spawn(async move {
            let mut stdin = tokio::io::stdin();
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = stdin.read(&mut buf).await {
                if n == 0 || input.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                let _ = input.flush().await;
            }
            let _ = input.shutdown().await;
        });
    }
    let out = proc.stdout().map(|mut s| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut s, &mut tokio::io::stdout()).await;
        })
    });
    let err = proc.stderr().map(|mut s| {
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut s, &mut tokio::io::stderr()).await;
        })
    });
    let status = proc.take_status().ok_or("error: no status channel")?.await;
    for h in [out, err].into_iter().flatten() {
        let _ = h.await;
    }
    drop(_raw);
    let Some(st) = status else {
        return Ok(0);
    };
    match st.status.as_deref() {
        Some("Success") => Ok(0),
        _ if st.reason.as_deref() == Some("NonZeroExitCode") => {
            let code = st
                .details
                .and_then(|d| d.causes)
                .into_iter()
                .flatten()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.and_then(|m| m.parse::<u8>().ok()))
                .unwrap_or(1);
            eprintln!("command terminated with exit code {code}");
            Ok(code)
        }
        _ => Err(format!("error: {}", st.message.unwrap_or_default()).into()),
    }
}
