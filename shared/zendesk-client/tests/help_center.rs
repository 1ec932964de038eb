//! Help Center search and comments with sideloaded authors, against the
//! simulator: the exact requests, the typed results, refusals before any
//! request.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::*;
use zendesk_client::ClientError;

#[tokio::test]
async fn search_articles_sends_the_query_and_returns_plain_snippets() {
    let sim = sim().await;
    let client = client(&sim);
    let added = sim.add_article("Printer ink", "Printer ink cartridges ship within a day.");
    let found = client.search_articles("  printer fire ", 2).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].title, "Printer safety: smoke, sparks or fire");
    assert_eq!(
        found[0].id, 30_000_000_000_000_002,
        "article ids above 2^53 stay exact"
    );
    assert_eq!(
        found[0].url.as_deref(),
        Some(format!("{}/hc/en-us/articles/30000000000000002", sim.base_url()).as_str())
    );
    assert!(!found[0].snippet.contains('<'), "{}", found[0].snippet);
    assert!(found[0].snippet.contains("printer"), "{}", found[0].snippet);
    assert_eq!(found[1].id, added.id);

    let requests = sim.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].path, "/api/v2/help_center/articles/search");
    assert_eq!(
        requests[0].query.as_deref(),
        Some("query=printer+fire&per_page=2")
    );
    assert_eq!(
        requests[0].header("authorization"),
        Some(expected_basic().as_str())
    );

    assert!(client.search_articles("zebra", 5).await.unwrap().is_empty());
    for bad in ["", "   ", &"x".repeat(501)] {
        let e = client.search_articles(bad, 5).await.unwrap_err();
        assert!(matches!(e, ClientError::InvalidRequest(_)), "{e:?}");
    }
    assert_eq!(sim.requests().len(), 2, "refused queries send nothing");
}

#[tokio::test]
async fn comments_with_authors_names_each_author_once() {
    let sim = sim().await;
    let client = client(&sim);
    let id = enduser_ticket(&sim);
    sim.add_agent_comment(id, "We are on it", false).unwrap();
    sim.add_enduser_comment(id, "Thanks").unwrap();
    let thread = client.list_comments_with_authors(id, 2).await.unwrap();
    let bodies: Vec<&str> = thread.comments.iter().map(|c| c.body.as_str()).collect();
    assert_eq!(bodies, ["We are on it", "Thanks"]);
    assert_eq!(thread.authors.len(), 2);
    let agent = thread.author(thread.comments[0].author_id).unwrap();
    assert_eq!(agent.name, "zengate API");
    assert!(agent.is_staff());
    let customer = thread.author(thread.comments[1].author_id).unwrap();
    assert!(!customer.is_staff());
    let r = &sim.requests()[0];
    assert_eq!(
        r.query.as_deref(),
        Some("page%5Bsize%5D=2&sort=-created_at&include=users")
    );
    // The plain listing does not ask for users.
    client.list_comments(id, 1).await.unwrap();
    assert!(
        !sim.requests()[1]
            .query
            .as_deref()
            .unwrap()
            .contains("include")
    );
}
