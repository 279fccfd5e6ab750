// Minimal entry point until the CLI lands: only `meshcheck echo` is wired, so the local
// target and its tests have a binary to spawn as the backend.
fn main() {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() != Some("echo") {
        eprintln!("usage: meshcheck echo -text=TEXT [-listen=ADDR] [-status-code=N]");
        std::process::exit(meshcheck::exit_codes::BAD_INPUT);
    }
    let parsed = match meshcheck::echo::EchoArgs::parse(args.collect()) {
        Ok(parsed) => parsed,
        Err(err) => {
            eprintln!("error: {err}");
            std::process::exit(meshcheck::exit_codes::BAD_INPUT);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: failed to start the async runtime: {err}");
            std::process::exit(meshcheck::exit_codes::SETUP_FAILED);
        }
    };
    if let Err(err) = runtime.block_on(meshcheck::echo::serve(parsed)) {
        eprintln!("error: {err}");
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            eprintln!("Caused by: {cause}");
            source = cause.source();
        }
        std::process::exit(meshcheck::exit_codes::SETUP_FAILED);
    }
}
