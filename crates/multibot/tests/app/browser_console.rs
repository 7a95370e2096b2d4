//! The web console in a real headless Chromium: a wrong token is refused, the right one logs in, the fleet page
//! lists the bots and follows a change live, Stop asks first and then stops the bot (its polling ends at the
//! emulator), and a broken file's reload shows its file and line. On a phone-sized window the table still fits.

use std::time::Duration;

use multibot::{config::BotId, fleet::BotState};
use serde_json::json;

use crate::{
    browser::Browser,
    console::{CONSOLE_TOKEN, ECHO, console_app},
    helpers::token,
};

/// Clicks the element `css` names, found and clicked in one step: the live stream may replace the table's rows
/// between a lookup and a click.
async fn click(browser: &Browser, css: &str) {
    browser.find(css).await;
    let clicked = browser
        .execute("const e = document.querySelector(arguments[0]); if (e) e.click(); return !!e;", vec![json!(css)])
        .await;
    assert_eq!(clicked, json!(true), "{css}");
}

#[tokio::test]
async fn the_console_logs_in_lists_the_fleet_stops_a_bot_and_shows_a_reload_error() {
    let Some(browser) = Browser::start("console").await else { return };
    let app = console_app().await;
    let base = app.served.url("");
    let echo = app.emu.bot(&token(1)).await.unwrap();
    let echo_id = BotId::parse("echo").unwrap();

    // A wrong token is refused, and the form says so.
    browser.goto(&format!("{base}/console")).await;
    browser.find("#token").await.type_text("not-the-token").await;
    browser.find("form button[type=submit]").await.click().await;
    browser.find_text("[role=alert]", "That is not the console token.").await;
    assert!(browser.cookies().await.is_empty(), "no session for a wrong token");

    // The right one logs in; the session cookie is out of scripts' reach.
    browser.find("#token").await.type_text(CONSOLE_TOKEN).await;
    browser.find("form button[type=submit]").await.click().await;
    browser.find_text("h1", "Fleet").await;
    let cookies = browser.cookies().await;
    assert_eq!(cookies.len(), 1);
    assert_eq!((&cookies[0]["httpOnly"], &cookies[0]["sameSite"]), (&json!(true), &json!("Strict")));
    for bot in ["echo", "menu"] {
        browser.find(&format!("tr[data-bot='{bot}'] .badge.running")).await;
    }

    // A change made elsewhere shows without reloading the page (the live stream).
    app.served.manager.stop(&BotId::parse("menu").unwrap()).await.unwrap();
    browser.find("tr[data-bot='menu'] .badge.stopped").await;

    // Stop asks first; Cancel leaves the bot alone, Stop stops it.
    click(&browser, "tr[data-bot='echo'] a[href='/console/bots/echo/stop']").await;
    browser.find_text("h1", "Stop bot echo?").await;
    browser.find_text("a.button", "Cancel").await.click().await;
    browser.find_text("h1", "Echo Bot").await;
    assert_eq!(app.served.manager.status_of(&echo_id).unwrap().state, BotState::Running);
    browser.find("a[href='/console/bots/echo/stop']").await.click().await;
    browser.find_text("button", "Stop echo").await.click().await;
    browser.find_text("#outcome", "Bot echo stopped").await;
    browser.find("tr[data-bot='echo'] .badge.stopped").await;
    // Polling ended at the emulator: no getUpdates comes, and a user's message waits in Telegram.
    let polls = echo.calls(Some("getUpdates")).await.unwrap().len();
    app.emu.user(601).send(&echo, "still there?").await.unwrap();
    let quiet_until = tokio::time::Instant::now() + Duration::from_millis(1500);
    while tokio::time::Instant::now() < quiet_until {
        assert_eq!(echo.calls(Some("getUpdates")).await.unwrap().len(), polls, "a stopped bot polled");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(echo.stats().await.unwrap().pending, 1);

    // Bad input: a file with a plugin that does not exist; the reload shows where.
    app.dir.write("echo.yaml", &ECHO.replace("name: echo\n", "name: no_such_plugin\n"));
    browser.find("a[href='/console/reload']").await.click().await;
    browser.find_text("button", "Reload all").await.click().await;
    let outcome = browser.find_text("#outcome", "Reload finished with problems").await.text().await;
    assert!(outcome.contains("echo.yaml:5:"), "{outcome}");

    // A phone-sized window: the table reflows instead of overflowing the page.
    let phone = Some(json!({"width": 390, "height": 844}));
    browser.command(reqwest::Method::POST, "/window/rect", phone).await.unwrap_or_else(|e| panic!("resizing: {e}"));
    let fits = "return document.documentElement.scrollWidth <= window.innerWidth;";
    browser.wait_until("the page fits a phone's width", fits, vec![]).await;
    app.served.stop().await;
}
