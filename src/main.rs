//! The `switchboard` binary: `serve` (the default), `migrate`, or `openapi`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard::app::{self, App};
use switchboard::config::Config;
use switchboard::telemetry;

/// mimalloc: rows are decoded on SQLite's worker threads and freed on Tokio's, and every page
/// allocates a few hundred small strings; the system allocator spent a fifth of a read on that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "switchboard", version, about = "Shared-inbox backend")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API, webhooks and WebSocket (the default).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Print the OpenAPI document (the same as GET /openapi.json and swagger-core.json).
    Openapi,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Openapi) = cli.command {
        // Needs no configuration: the document is fixed at build time.
        print!("{}", switchboard::http::openapi::json());
        return ExitCode::SUCCESS;
    }
    // A missing .env is normal; a malformed one is reported.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("switchboard: cannot read .env: {e}");
            return ExitCode::from(2);
        }
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("switchboard: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("switchboard: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Serve) {
            Command::Serve => serve(config).await,
            Command::Openapi => Ok(()),
            Command::Migrate => app::open_database(&config)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("switchboard: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: Config) -> Result<(), String> {
    let address = (config.host, config.port);
    let listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
        format!(
            "HOST/PORT: cannot listen on {}:{}: {e}",
            address.0, address.1
        )
    })?;
    let app = App::build(config, listener)
        .await
        .map_err(|e| e.to_string())?;
    app.run(app::shutdown_signal())
        .await
        .map_err(|e| e.to_string())
}
