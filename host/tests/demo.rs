//! `hookhost demo` as a newcomer runs it (the built binary): it prints the console's URL and a
//! sign-in key that works, and the sample callbacks it posted are there to see — a missed call,
//! a forwarded call, an SMS STOP and a Stripe invoice.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hookhost_tests::PATIENCE;

/// Kills the demo when the test ends, whatever happens.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_demo_prints_a_console_and_a_key_that_show_its_samples() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_hookhost"))
        .args(["demo", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting hookhost demo");
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);
    // What it prints, up to the key. A thread reads the pipe to its end, so the demo never
    // writes into a closed pipe (which would end it).
    let (lines, printed_lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let printed = tokio::task::spawn_blocking(move || {
        let mut out = String::new();
        while let Ok(line) = printed_lines.recv_timeout(Duration::from_secs(600)) {
            out.push_str(&line);
            out.push('\n');
            if line.contains("sign in with:") {
                break;
            }
        }
        out
    })
    .await
    .unwrap();
    let field = |name: &str| {
        let line = printed
            .lines()
            .find(|l| l.trim_start().starts_with(name))
            .unwrap_or_else(|| panic!("{name} in:\n{printed}"));
        line.split_whitespace().last().unwrap().to_string()
    };
    let (console, key) = (field("console:"), field("sign in with:"));
    assert_eq!(console, format!("http://127.0.0.1:{port}/console"));

    // Sign in as a browser would, then find the samples on the events page.
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let page = http.get(format!("{console}/sign-in")).send().await.unwrap();
    let pre = page.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let body = page.text().await.unwrap();
    let at = body.find("name=\"csrf\" value=\"").unwrap() + 19;
    let form = form_urlencoded::Serializer::new(String::new())
        .append_pair("key", &key)
        .append_pair("csrf", &body[at..at + 64])
        .finish();
    let signed = http
        .post(format!("{console}/sign-in"))
        .header("cookie", pre)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 303, "the printed key signs in");
    let session = signed.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let deadline = Instant::now() + PATIENCE;
    let wanted = ["call.missed", "call.forwarded", "sms.opt_out", "billing.invoice.paid"];
    loop {
        let events = http.get(format!("{console}/events")).header("cookie", &session).send().await.unwrap();
        assert_eq!(events.status(), 200);
        let text = events.text().await.unwrap();
        if wanted.iter().all(|w| text.contains(w)) {
            break;
        }
        assert!(Instant::now() < deadline, "the samples never all showed:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
