//! The `lxc-operator` binary.

#![forbid(unsafe_code)]

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use lxc_operator::crd::generate;
use lxc_operator::runtime::run::{self, RunConfig};

#[derive(Parser)]
#[command(
    name = "lxc-operator",
    version,
    about = "Proxmox VE LXC containers, declared in Kubernetes"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a folder.
    Crd {
        /// Folder to write `<plural>.yaml` files into instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Run the operator (boxed: the configuration is large next to `crd`).
    Run(Box<RunConfig>),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Crd { out: None } => print!("{}", generate::all_yaml()?),
        Command::Crd { out: Some(dir) } => {
            std::fs::create_dir_all(&dir)?;
            for (file, crd) in generate::all() {
                std::fs::write(dir.join(file), generate::to_yaml(&crd)?)?;
            }
        }
        Command::Run(config) => {
            run::init_logging(&config.log_format);
            tokio::runtime::Runtime::new()?.block_on(run::run(*config))?;
        }
    }
    Ok(())
}
