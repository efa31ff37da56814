//! The README's TLS section, run as written: its `openssl` line makes the key and certificate,
//! its `pipelined serve` line serves them, and its `pipelined send` and `pipelined health` lines
//! trust the certificate with `--cacert`. The commands are read from README.md, so a change
//! there is a change here. The same runs are made with the certificate openssl makes without
//! `basicConstraints=critical,CA:FALSE` (a CA's, which the README's recipe made before), and
//! with a system store holding an unrelated CN=localhost certificate, as Debian's
//! `ssl-cert-snakeoil.pem` is.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::binary::Binary;
use common::pki::TempDir;
use common::tools;

const README: &str = include_str!("../../README.md");

/// The address the README's commands use; the test serves on a free port instead.
const README_ADDR: &str = "127.0.0.1:8443";

/// What the README's recipe adds to openssl's default, which marks the certificate a CA's.
const END_ENTITY: [&str; 2] = ["-addext", "basicConstraints=critical,CA:FALSE"];

/// The commands of the README's "TLS" section, each as its words.
struct Commands {
    openssl: Vec<String>,
    serve: Vec<String>,
    send: Vec<String>,
    health: Vec<String>,
}

impl Commands {
    fn from_readme() -> Commands {
        let lines = shell_lines(section(README, "## TLS"));
        let find = |prefix: &str| -> Vec<String> {
            let line = lines
                .iter()
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("the README's TLS section has no `{prefix}` line"));
            words(line)
        };
        Commands {
            openssl: find("openssl req "),
            serve: find("pipelined serve "),
            send: find("pipelined send "),
            health: find("pipelined health "),
        }
    }
}

/// The text of the section that starts with the heading `heading`, up to the next `## `.
fn section<'a>(text: &'a str, heading: &str) -> &'a str {
    let start = text
        .find(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("README.md has no `{heading}`"));
    let body = &text[start + 1..];
    let end = body[heading.len()..]
        .find("\n## ")
        .map_or(body.len(), |i| i + heading.len());
    &body[..end]
}

/// The commands in the section's ```sh blocks, one per line, with `\` continuations joined and
/// `#` comments dropped.
fn shell_lines(section: &str) -> Vec<String> {
    let mut lines = Vec::new();
    let mut in_sh = false;
    let mut pending = String::new();
    for line in section.lines() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let code = line.split(" #").next().unwrap_or_default().trim_end();
        match code.strip_suffix('\\') {
            Some(start) => pending.push_str(start),
            None => {
                pending.push_str(code);
                lines.push(pending.split_whitespace().collect::<Vec<_>>().join(" "));
                pending.clear();
            }
        }
    }
    lines
}

/// A command's words. The README's TLS commands have no quotes or variables (asserted), so
/// splitting at spaces is what a shell would do with them.
fn words(line: &str) -> Vec<String> {
    assert!(
        !line.contains(['\'', '"', '$', '`', '*']),
        "a shell would read `{line}` differently from split words; keep it plain"
    );
    line.split(' ').map(str::to_owned).collect()
}

/// Runs `program` with `args` in `dir` (where the README's relative file names live), with
/// `system_roots` as the machine's trust store.
fn run(program: &Path, args: &[String], dir: &Path, system_roots: &Path) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("SSL_CERT_FILE", system_roots)
        .env_remove("SSL_CERT_DIR")
        .output()
        .unwrap_or_else(|e| panic!("{} runs: {e}", program.display()))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `args` with every `from` replaced by `to`.
fn replaced(args: &[String], from: &str, to: &str) -> Vec<String> {
    args.iter().map(|a| a.replace(from, to)).collect()
}

/// `args` without the flag `flag` and its value.
fn without(args: &[String], flag: &[&str; 2]) -> Vec<String> {
    let at = args
        .windows(2)
        .position(|w| w[0] == flag[0] && w[1] == flag[1])
        .unwrap_or_else(|| panic!("`{}` is not in {args:?}", flag.join(" ")));
    [&args[..at], &args[at + 2..]].concat()
}

/// What `openssl x509` says the certificate's basic constraints are.
fn basic_constraints(openssl: &Path, dir: &Path, cert: &str) -> String {
    let args = ["x509", "-in", cert, "-noout", "-ext", "basicConstraints"].map(String::from);
    let out = run(openssl, &args, dir, Path::new("/dev/null"));
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout)
}

/// Debian's `/etc/ssl/certs/ssl-cert-snakeoil.pem` as `make-ssl-cert` makes it: a self-signed
/// RSA end-entity certificate for CN=localhost, unrelated to the server's, in `dir`.
fn debian_snakeoil(openssl: &Path, dir: &Path) -> PathBuf {
    let args = [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=localhost",
        "-addext",
        "basicConstraints=CA:FALSE",
        "-addext",
        "subjectAltName=DNS:localhost",
        "-keyout",
        "ssl-cert-snakeoil.key",
        "-out",
        "ssl-cert-snakeoil.pem",
    ]
    .map(String::from);
    let made = run(openssl, &args, dir, Path::new("/dev/null"));
    assert!(made.status.success(), "{}", text(&made.stderr));
    dir.join("ssl-cert-snakeoil.pem")
}

/// What the certificate a recipe makes is, and why a client refuses it without `--cacert`.
struct Expect {
    /// `openssl x509 -ext basicConstraints` says this.
    constraints: &'static str,
    /// The rustls error when the system store holds only Debian's snakeoil certificate.
    refusal: &'static str,
}

/// The README's flow in a fresh directory, with the key and certificate `openssl_args` make:
/// `send` and `health` with `--cacert` succeed; without it they fail with the hint, the system
/// store holding only Debian's snakeoil certificate.
fn serve_and_trust(openssl: &Path, commands: &Commands, openssl_args: &[String], expect: Expect) {
    let expect_ca = expect.constraints;
    let dir = TempDir::new("readme-tls");
    let store = TempDir::new("system-store");
    let snakeoil = debian_snakeoil(openssl, &store.0);
    let made = run(openssl, &openssl_args[1..], &dir.0, &snakeoil);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let cert = &openssl_args[openssl_args.iter().position(|a| a == "-out").unwrap() + 1];
    assert!(
        basic_constraints(openssl, &dir.0, cert).contains(expect_ca),
        "the recipe was meant to make a {expect_ca} certificate"
    );

    // The server runs in the test's directory, so the files it names are given their place.
    let serve: Vec<String> = replaced(&commands.serve[1..], README_ADDR, "127.0.0.1:0")
        .into_iter()
        .map(|arg| match dir.0.join(&arg) {
            made if made.is_file() => made.to_str().unwrap().to_owned(),
            _ => arg,
        })
        .collect();
    let serve: Vec<&str> = serve.iter().map(String::as_str).collect();
    let server = Binary::start(&serve, &[]);
    let addr = server.addr.to_string();
    let binary = Path::new(env!("CARGO_BIN_EXE_pipelined"));
    let send = replaced(&commands.send[1..], README_ADDR, &addr);
    let health = replaced(&commands.health[1..], README_ADDR, &addr);

    let sent = run(binary, &send, &dir.0, &snakeoil);
    assert!(sent.status.success(), "{expect_ca}: {}", text(&sent.stderr));
    let report = text(&sent.stdout);
    assert!(report.contains("\"Hello, World!\""), "{report}");
    let checked = run(binary, &health, &dir.0, &snakeoil);
    assert!(
        checked.status.success(),
        "{expect_ca}: {}",
        text(&checked.stderr)
    );
    assert!(
        text(&checked.stdout).starts_with("healthy: "),
        "{}",
        text(&checked.stdout)
    );

    for args in [&send, &health] {
        let untrusted = without(args, &["--cacert", cert.as_str()]);
        let refused = run(binary, &untrusted, &dir.0, &snakeoil);
        assert_eq!(refused.status.code(), Some(1), "{untrusted:?}");
        let err = text(&refused.stderr);
        assert!(err.contains(expect.refusal), "{untrusted:?}: {err}");
        assert!(
            err.trim_end()
                .ends_with("(use --insecure or --cacert for a self-signed server)"),
            "{untrusted:?}: {err}"
        );
    }
    server.terminate();
}

/// The README's recipe as written: an end-entity certificate.
#[test]
fn the_readmes_certificate_serves_and_is_trusted_with_cacert() {
    let Some(openssl) = tools::installed("openssl", "openssl") else {
        return;
    };
    let commands = Commands::from_readme();
    assert!(
        commands.openssl.windows(2).any(|w| w == END_ENTITY),
        "the README's openssl line makes an end-entity certificate: {:?}",
        commands.openssl
    );

    let expect = Expect {
        constraints: "CA:FALSE",
        // Found as the issuer by its name, the snakeoil's RSA key cannot check an EC signature.
        refusal: "UnsupportedSignatureAlgorithmForPublicKeyContext",
    };
    serve_and_trust(&openssl, &commands, &commands.openssl, expect);
}

/// The same recipe without `CA:FALSE`: openssl's default CA certificate, which curl accepts
/// with `--cacert` as the server's own, and so does `pipelined`.
#[test]
fn openssls_default_ca_certificate_is_trusted_with_cacert_too() {
    let Some(openssl) = tools::installed("openssl", "openssl") else {
        return;
    };
    let commands = Commands::from_readme();
    let ca_recipe = without(&commands.openssl, &END_ENTITY);

    let expect = Expect {
        constraints: "CA:TRUE",
        refusal: "CaUsedAsEndEntity",
    };
    serve_and_trust(&openssl, &commands, &ca_recipe, expect);
}

/// The files the README's recipe writes (a private key among them) are neither committed nor
/// sent to a container build: `git check-ignore` decides for git; `.dockerignore` must list each
/// name under `**/` (any directory, the root included), which is all it is checked for.
#[test]
fn the_readmes_key_and_certificate_are_ignored() {
    let root = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    let openssl = Commands::from_readme().openssl;
    let files: Vec<&String> = ["-keyout", "-out"]
        .iter()
        .map(|flag| &openssl[openssl.iter().position(|a| a == flag).unwrap() + 1])
        .collect();
    let dockerignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    for file in files {
        let git = Command::new("git")
            .args(["check-ignore", "--quiet", "--no-index", file])
            .current_dir(&root)
            .status()
            .expect("git runs");
        assert!(git.success(), "`{file}` is not in .gitignore");
        let pattern = format!("**/{file}");
        assert!(
            dockerignore.lines().any(|l| l.trim() == pattern),
            "`{pattern}` is not in .dockerignore"
        );
    }
}
