//! What an installed throng brings besides the binary, made from the command line's own
//! definitions so that they cannot drift from it: shell completions (`throng completions
//! bash`) and man pages (`throng manpages DIR`, one per subcommand: `man throng-attack`).

use clap::{Args, CommandFactory, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    throng completions bash > /etc/bash_completion.d/throng\n  \
    throng completions zsh > ~/.zfunc/_throng\n  \
    throng completions fish > ~/.config/fish/completions/throng.fish")]
pub struct CompletionsArgs {
    /// The shell to complete in
    shell: Shell,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
    Elvish,
    Powershell,
}

#[derive(Debug, Args)]
pub struct ManpagesArgs {
    /// Folder to write the pages into (made if missing): throng.1, throng-proxy.1,
    /// throng-proxy-ctl.1 and so on
    dir: PathBuf,
}

/// Writes the completion script for one shell to stdout.
pub fn completions(args: CompletionsArgs) -> ExitCode {
    use clap_complete::Shell as To;
    let shell = match args.shell {
        Shell::Bash => To::Bash,
        Shell::Zsh => To::Zsh,
        Shell::Fish => To::Fish,
        Shell::Elvish => To::Elvish,
        Shell::Powershell => To::PowerShell,
    };
    let mut command = super::Cli::command();
    clap_complete::generate(shell, &mut command, "throng", &mut std::io::stdout());
    ExitCode::SUCCESS
}

/// Writes a man page for throng and for each of its subcommands, nested ones too.
pub fn manpages(args: ManpagesArgs) -> ExitCode {
    let written = std::fs::create_dir_all(&args.dir)
        .and_then(|()| clap_mangen::generate_to(super::Cli::command(), &args.dir));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("throng manpages: {}: {e}", args.dir.display());
            ExitCode::FAILURE
        }
    }
}
