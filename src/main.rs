fn main() {
    std::process::exit(meshcheck::exit_codes::SUCCESS);
}
