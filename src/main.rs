//! The `mailroute_exporter` binary: parse the command line, hand over to the library.

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use mailroute_exporter::cli::{CheckArgs, Cli, Command, ReplayArgs, ServeArgs};
use mailroute_exporter::config::{Config, Overrides};
use mailroute_exporter::{check, logging, process, replay, serve};

/// Exit code for usage and configuration errors (SPEC §2).
const EXIT_CONFIG: u8 = 2;

/// Loads the file (or the defaults) and applies the flags; on error prints it and
/// gives the exit code for a bad configuration.
fn configure(path: Option<&Path>, overrides: &Overrides) -> Result<Config, ExitCode> {
    let loaded = match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    };
    let mut config = loaded.map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    config.apply(overrides).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(EXIT_CONFIG)
    })?;
    Ok(config)
}

fn main() -> ExitCode {
    process::mark_start();
    process::limit_malloc_arenas();
    let cli = Cli::parse();
    match cli.command {
        None => run_serve(cli.serve),
        Some(Command::Serve(args)) => run_serve(args),
        Some(Command::ValidateConfig { path }) => validate(&path),
        Some(Command::Replay(args)) => run_replay(args),
        Some(Command::Check(args)) => run_check(args),
    }
}

fn validate(path: &Path) -> ExitCode {
    match Config::load(path) {
        Ok(c) => {
            println!(
                "{}: valid ({} log path(s), {} domain(s))",
                path.display(),
                c.maillog.paths.len(),
                c.dns.domains.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_replay(args: ReplayArgs) -> ExitCode {
    logging::init(&args.log);
    let overrides = Overrides { dns_domains: args.dns_domain.clone(), ..Default::default() };
    let config = match configure(args.config_file.as_deref(), &overrides) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match replay::run(&config, &args.files) {
        Ok(r) => {
            print!("{}", r.render(args.output));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("replay: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_serve(args: ServeArgs) -> ExitCode {
    logging::init(&args.log);
    let overrides = args.overrides();
    let config = match configure(args.config_file.as_deref(), &overrides) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(serve::run(config, args.config_file.clone(), overrides));
    // serve::run awaited every task that matters; a read of standard input may still
    // wait in the blocking pool and must not hold the exit
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exporter failed");
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_check(args: CheckArgs) -> ExitCode {
    logging::init(&args.log);
    let overrides = Overrides { dns_resolvers: args.dns_resolver.clone(), ..Default::default() };
    let config = match configure(args.config_file.as_deref(), &overrides) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let domains = match check::domains_to_check(&config, &args.domains) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("check: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let results = runtime.block_on(check::run(&config, &domains));
    print!("{}", check::render(&results, args.output));
    ExitCode::from(check::exit_code(&results))
}
