//! What a tenant does in the console, each in a fresh browser against a fresh server.

use anyhow::ensure;
use fantoccini::{Client, Locator};
use hookhost_tests::plugins;

use crate::{Scene, run, sign_in, wait_for, wait_for_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_callback_appears_without_reload_and_its_evidence_chain_is_whole() {
    run("evidence_chain", |c: Client| async move {
        let scene = Scene::new().await;
        let (status, v) = scene.server.upload_plugin(&scene.tenant, &scene.key, plugins::REDACT_PHONE).await;
        ensure!(status == 202 && v["state"] == "ready", "redact-phone uploaded: {v}");
        sign_in(&c, &scene, &scene.key).await?;
        c.find(Locator::LinkText("Events")).await?.click().await?;
        wait_for(&c, "#event-rows").await?;
        // A mark that a reload would wipe.
        c.execute("window.__still_here = 'yes';", vec![]).await?;

        scene.missed_call("CA_browser_1").await;
        let event_id = scene.event_id("call.missed").await;
        let row = wait_for(&c, &format!("#event-rows a[href='/console/events/{event_id}']")).await?;
        let mark = c.execute("return window.__still_here || null;", vec![]).await?;
        ensure!(mark == "yes", "the page was reloaded to show the event");

        // Wait for the delivery to finish, then read the chain.
        scene.server.settled("delivery").await;
        row.click().await?;
        wait_for(&c, "#provider-request").await?;
        let receipt = c.find(Locator::Css("#provider-request")).await?.text().await?;
        ensure!(receipt.contains("twilio/voice/status"), "the raw request's route: {receipt}");
        ensure!(receipt.contains("CallStatus=no-answer"), "the raw body: {receipt}");
        ensure!(receipt.contains("[redacted]"), "the signature header is redacted: {receipt}");
        ensure!(!receipt.contains(crate::TWILIO_TOKEN), "no secret on the page");
        let event = c.find(Locator::Css("#canonical-event")).await?.text().await?;
        ensure!(event.contains("\"event_type\": \"call.missed\"") && event.contains("+14158675309"), "{event}");
        let run = c.find(Locator::Css("#plugin-runs tr.plugin-run")).await?.text().await?;
        ensure!(run.contains("default") && run.contains("ok") && run.contains("µs"), "the plugin run: {run}");
        let attempt = c.find(Locator::Css("#deliveries tr.attempt")).await?.text().await?;
        ensure!(attempt.contains("200") && attempt.contains("succeeded"), "the delivery attempt: {attempt}");
        let sent = c.find(Locator::Css("#deliveries pre.body")).await?.prop("textContent").await?.unwrap_or_default();
        ensure!(
            sent.contains("+*******5309") && !sent.contains("+14158675309"),
            "what the plugin made is what was sent: {sent}"
        );
        // The README's picture of the chain (`HOOKHOST_SCREENSHOTS=docs`): the whole page.
        if let Ok(dir) = std::env::var("HOOKHOST_SCREENSHOTS") {
            c.set_window_size(1100, 1900).await?;
            std::fs::write(format!("{dir}/console-evidence-chain.png"), c.screenshot().await?)?;
        }
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_test_button_shows_the_receivers_answer() {
    run("endpoint_test", |c: Client| async move {
        let scene = Scene::new().await;
        scene.receiver.script(&[418]);
        sign_in(&c, &scene, &scene.key).await?;
        c.goto(&scene.url(&format!("/console/endpoints/{}", scene.endpoint))).await?;
        c.find(Locator::Css("#send-test")).await?.click().await?;
        let result = wait_for(&c, "#test-result").await?.text().await?;
        ensure!(result.contains("receiver answered 418"), "{result}");
        ensure!(result.contains("failed"), "{result}");
        // And a 200 reads as success.
        c.find(Locator::Css("#send-test")).await?.click().await?;
        wait_for_text(&c, "receiver answered 200", false).await?;
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_uploaded_through_the_page_dry_runs_with_a_diff() {
    run("plugin_dry_run", |c: Client| async move {
        let scene = Scene::new().await;
        // The active version forwards events unchanged; the candidate redacts phone numbers.
        let (status, v) = scene.server.upload_plugin(&scene.tenant, &scene.key, plugins::PASSTHROUGH).await;
        ensure!(status == 202 && v["active"] == true, "passthrough active: {v}");
        scene.missed_call("CA_browser_dry").await;
        scene.event_id("call.missed").await;
        sign_in(&c, &scene, &scene.key).await?;
        c.find(Locator::LinkText("Plugins")).await?.click().await?;
        let file = std::fs::canonicalize(plugins::REDACT_PHONE)?;
        c.find(Locator::Css("#upload input[name=file]")).await?.send_keys(&file.display().to_string()).await?;
        c.find(Locator::Css("#upload button[type=submit]")).await?.click().await?;
        wait_for(&c, "#uploaded").await?;
        // The page looks again while version 2 compiles; then its dry-run button is there.
        let button = wait_for(&c, "tr[data-version='2'] button.dry-run").await?;
        button.click().await?;
        let summary = wait_for(&c, "#dry-run").await?.text().await?;
        ensure!(summary.contains("version 2"), "{summary}");
        let changed: i64 = c.find(Locator::Css("#changed-count")).await?.text().await?.parse()?;
        ensure!(changed >= 1, "at least the missed call changed: {summary}");
        let rows = c.find_all(Locator::Css("#dry-run table.diff tr.changed")).await?;
        ensure!(!rows.is_empty(), "changed fields are highlighted");
        let mut seen = String::new();
        for r in rows {
            seen.push_str(&r.text().await?);
            seen.push('\n');
        }
        ensure!(seen.contains("+14158675309") && seen.contains("+*******5309"), "old and new side by side:\n{seen}");
        Ok(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_is_retried_from_the_page() {
    run("retry_delivery", |c: Client| async move {
        let scene = Scene::new().await;
        scene.receiver.set_default(500);
        scene.missed_call("CA_browser_retry").await;
        let event_id = scene.event_id("call.missed").await;
        sign_in(&c, &scene, &scene.key).await?;
        c.goto(&scene.url(&format!("/console/events/{event_id}"))).await?;
        // Four attempts (the test schedule retries three times), then it fails for good.
        wait_for_text(&c, "Retry delivery", true).await?;
        ensure!(c.find_all(Locator::Css("#deliveries tr.attempt")).await?.len() == 4, "four attempts shown");
        scene.receiver.set_default(200);
        c.find(Locator::Css("button.retry")).await?.click().await?;
        // Back on the event's page (no longer failed), which shows the new attempt once made.
        wait_for(&c, "#deliveries article.delivery:not([data-status='failed'])").await?;
        let deadline = tokio::time::Instant::now() + hookhost_tests::PATIENCE;
        loop {
            let d = wait_for(&c, "#deliveries article.delivery").await?;
            if d.attr("data-status").await?.as_deref() == Some("succeeded") {
                break;
            }
            ensure!(tokio::time::Instant::now() < deadline, "the retried delivery never succeeded");
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            c.refresh().await?;
        }
        let attempts = c.find_all(Locator::Css("#deliveries tr.attempt")).await?;
        ensure!(attempts.len() == 5, "a fifth attempt");
        ensure!(attempts[4].text().await?.contains("200"), "answered 200");
        Ok(())
    })
    .await;
}
