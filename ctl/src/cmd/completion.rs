//! `tkctl completion bash|zsh|fish`: clap's completion script.

use crate::client::Res;

#[derive(clap::Args)]
pub struct CompletionArgs {
    /// bash or zsh.
    shell: String,
}

/// Prints the completion script of `cli` (tkctl's clap command) for the shell.
pub fn completion(a: CompletionArgs, mut cli: clap::Command) -> Res<u8> {
    let shell = match a.shell.as_str() {
        "bash" => clap_complete::Shell::Bash,
        "zsh" => clap_complete::Shell::Zsh,
        "fish" => clap_complete::Shell::Fish,
        other => return Err(format!("error: Unsupported shell type \"{other}\".").into()),
    };
    clap_complete::generate(shell, &mut cli, "tkctl", &mut std::io::stdout());
    Ok(0)
}
