//! The `mailroute_exporter` binary: parse the command line, hand over to the library.

use std::process::ExitCode;

use clap::Parser;
use mailroute_exporter::cli::{Cli, Command, ServeArgs};
use mailroute_exporter::config::{Config, ConfigError};
use mailroute_exporter::{check, logging, process, replay, serve};

/// Exit code for usage and configuration errors (SPEC §2).
const EXIT_CONFIG: u8 = 2;

fn load_config(path: Option<&std::path::Path>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => Ok(Config::default()),
    }
}

fn main() -> ExitCode {
    process::mark_start();
    process::limit_malloc_arenas();
    let cli = Cli::parse();
    match cli.command {
        None => run_serve(cli.serve),
        Some(Command::Serve(args)) => run_serve(args),
        Some(Command::ValidateConfig { path }) => match Config::load(&path) {
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
        },
        Some(Command::Replay(args)) => {
            logging::init(&args.log);
            let mut config = match load_config(args.config_file.as_deref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(EXIT_CONFIG);
                }
            };
            let o =
                mailroute_exporter::config::Overrides { dns_domains: args.dns_domain.clone(), ..Default::default() };
            if let Err(e) = config.apply(&o) {
                eprintln!("{e}");
                return ExitCode::from(EXIT_CONFIG);
            }
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
        Some(Command::Check(args)) => run_check(args),
    }
}

fn run_serve(args: ServeArgs) -> ExitCode {
    logging::init(&args.log);
    let mut config = match load_config(args.config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "invalid configuration");
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let overrides = args.overrides();
    if let Err(e) = config.apply(&overrides) {
        eprintln!("{e}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve::run(config, args.config_file.clone(), overrides)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "exporter failed");
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

fn run_check(args: mailroute_exporter::cli::CheckArgs) -> ExitCode {
    logging::init(&args.log);
    let mut config = match load_config(args.config_file.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let o = mailroute_exporter::config::Overrides { dns_resolvers: args.dns_resolver.clone(), ..Default::default() };
    if let Err(e) = config.apply(&o) {
        eprintln!("{e}");
        return ExitCode::from(EXIT_CONFIG);
    }
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
