//! The web console in a real headless Chromium: a proposal published on the
//! bus appears live, a click approves it and the release reaches the bus;
//! edit-then-approve releases the edited text. Screenshots go to
//! `target/artifacts/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::webdriver::{Browser, artifact};
use support::{ALICE, Infra, Svc, released_subject, reply_request, unique_ticket};

#[tokio::test]
async fn console_shows_live_proposals_and_approves_with_a_click() {
    let infra = Infra::start().await;
    let svc = Svc::start(&infra).await;
    let browser = Browser::start().await;

    browser.goto(&svc.url("/")).await;
    let token = browser.wait_for("#token").await;
    browser.type_text(&token, ALICE).await;
    browser.click(&browser.wait_for("#signin").await).await;
    browser.wait_for("body[data-loaded='1']").await;
    browser.wait_for("#no-pending").await;
    // the live channel is open before the proposal arrives
    browser.wait_for("#live[data-state='open']").await;

    let ticket = unique_ticket();
    let req = reply_request(&ticket, "Your replacement printer ships today.");
    infra.publish_request(&req).await;
    let id = req.approval_id.clone();
    let card = browser
        .wait_for(&format!(".pending-item[data-approval-id='{id}']"))
        .await;
    let text = browser.text(&card).await;
    assert!(
        text.contains("Your replacement printer ships today."),
        "{text}"
    );
    assert!(
        text.contains(&format!("Printer on fire #{ticket}")),
        "{text}"
    );
    assert!(text.contains("Ada <ada@example.com>"), "{text}");
    browser.screenshot(&artifact("console.png")).await;

    let approve = browser
        .wait_for(&format!("button[data-action='approve'][data-id='{id}']"))
        .await;
    browser.click(&approve).await;
    infra.wait_count(&released_subject(&ticket), 1).await;
    let released = infra.last(&released_subject(&ticket)).await;
    assert_eq!(released["approved_by"], "alice");
    assert_eq!(
        released["action"]["body"],
        "Your replacement printer ships today."
    );
    // the card leaves the pending list and shows in the history
    browser
        .wait_for(&format!(
            ".history-item[data-approval-id='{id}'][data-state='released']"
        ))
        .await;
    assert!(
        browser
            .find_all(&format!(".pending-item[data-approval-id='{id}']"))
            .await
            .is_empty()
    );

    // edit, then approve
    let ticket2 = unique_ticket();
    let req2 = reply_request(&ticket2, "Draft text");
    infra.publish_request(&req2).await;
    let id2 = req2.approval_id.clone();
    browser
        .wait_for(&format!(".pending-item[data-approval-id='{id2}']"))
        .await;
    browser
        .click(
            &browser
                .wait_for(&format!("button[data-action='edit'][data-id='{id2}']"))
                .await,
        )
        .await;
    let area = browser
        .wait_for(&format!("textarea[data-edit-for='{id2}']"))
        .await;
    browser.clear(&area).await;
    browser.type_text(&area, "Edited by a human").await;
    browser
        .click(
            &browser
                .wait_for(&format!(
                    "button[data-action='save-approve'][data-id='{id2}']"
                ))
                .await,
        )
        .await;
    infra.wait_count(&released_subject(&ticket2), 1).await;
    assert_eq!(
        infra.last(&released_subject(&ticket2)).await["action"]["body"],
        "Edited by a human"
    );
    let edits = browser
        .wait_for(&format!(".history-item[data-approval-id='{id2}'] .edits"))
        .await;
    assert!(browser.text(&edits).await.contains("+ Edited by a human"));
    browser.screenshot(&artifact("console-history.png")).await;
    browser.quit().await;
}
