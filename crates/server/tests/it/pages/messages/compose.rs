//! Writing: the compose form and its multipart POST, what the recipients get, and what is
//! refused (the token, the size limit, wrong input) without sending anything.

use reqwest::StatusCode;
use serde_json::Value;

use super::*;
use crate::helpers::{Backend, Options, PASSWORD, spawn_app, spawn_app_with};
use crate::on_both_backends;

on_both_backends!(a_message_to_two_recipients_carries_its_file_to_each);

async fn a_message_to_two_recipients_carries_its_file_to_each(backend: Backend) {
    let Some(app) = spawn_app(backend).await else {
        return;
    };
    let mut alice = Browser::new(&app);
    alice.enroll("alice@example.com").await;
    let mut bob = Browser::new(&app);
    bob.enroll("bob@example.com").await;
    let mut carol = Browser::new(&app);
    carol.enroll("carol@example.com").await;

    let account = alice.open("/account").await;
    assert!(
        account.has("<a href=\"/messages\" class=\"nav-link\" id=\"nav-messages\">Messages</a>")
    );
    let form = alice.open("/messages/new").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.has("method=\"post\" action=\"/messages/new\" enctype=\"multipart/form-data\""));
    let order: Vec<usize> = [
        "name=\"csrf\"",
        "name=\"to\"",
        "name=\"subject\"",
        "name=\"body\"",
        "name=\"expires_in_days\"",
        "name=\"delete_after_read\"",
        "name=\"attachments\" type=\"file\" multiple",
    ]
    .iter()
    .map(|field| form.html.find(field).unwrap_or_else(|| panic!("{field}")))
    .collect();
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    assert!(form.has("<option value=\"7\" selected>7 days</option>"));

    // More than one chunk of the store, and not a multiple of it.
    let file = file_bytes(300 * 1024 + 7, 3);
    let sent = alice
        .compose(
            &[
                ("to", "bob@example.com,\r\ncarol@example.com"),
                ("subject", "Quarterly figures"),
                ("body", BODY),
                ("expires_in_days", "7"),
            ],
            &[("figures-q3.xlsx", &file)],
        )
        .await;
    assert_eq!(sent.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&sent), "/messages?done=sent");
    let list = alice.open("/messages?done=sent").await;
    assert!(list.has("id=\"notice\""));

    let mut ids = Vec::new();
    for (browser, email) in [
        (&mut bob, "bob@example.com"),
        (&mut carol, "carol@example.com"),
    ] {
        // The email links to the message, never with its body or its file's name.
        let (path, token) = only_link(&app, email);
        assert_eq!(token, None, "{email} has an account");
        let mails = Value::Array(app.messages_to(email)).to_string();
        assert!(
            !mails.contains("4417-plum") && !mails.contains("figures-q3"),
            "{mails}"
        );
        let page = browser.open(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.html);
        assert!(page.has("alice@example.com") && page.has("Quarterly figures"));
        assert!(
            page.has("Door code 4417-plum\n&#60;script&#62;alert(1)&#60;/script&#62;</pre>"),
            "{}",
            page.html
        );
        assert!(page.has("figures-q3.xlsx") && page.has("300 KiB"));
        assert!(page.has("This message will be erased on 2027-01-22 08:00 UTC."));
        assert!(page.has(&format!("action=\"{path}/delete\"")));
        let links = attachment_links(&page);
        assert_eq!(links.len(), 1);
        assert!(links[0].starts_with(&format!("{path}/attachments/")));
        assert!(browser.download(&links[0]).await == file, "byte for byte");
        ids.push(path);
    }
    assert_ne!(ids[0], ids[1], "a message of their own each");

    // Bob's inbox lists it; Alice's sent list has a receipt for each.
    let inbox = bob.open("/messages").await;
    let received = between(&inbox.html, "id=\"received\"", "</section>");
    assert!(received.contains(&format!("<a href=\"{}\">Quarterly figures</a>", ids[0])));
    assert!(received.contains("alice@example.com") && received.contains(">read<"));
    let sent_list = alice.open("/messages").await;
    let sent = between(&sent_list.html, "id=\"sent\"", "</section>");
    assert!(sent.contains("bob@example.com") && sent.contains("carol@example.com"));
    assert_eq!(
        sent.matches("Read 2027-01-15 08:00 UTC").count(),
        2,
        "{sent}"
    );
    assert!(!sent.contains("4417-plum"), "a list never shows a body");

    // Deleting from the read page erases it for both.
    bob.open(&ids[0]).await;
    let deleted = bob.submit(&format!("{}/delete", ids[0]), &[]).await;
    assert_eq!(location(&deleted), "/messages?done=deleted");
    let gone = bob.open(&ids[0]).await;
    assert_eq!(gone.status, StatusCode::GONE);
    assert!(gone.has("This message was deleted"));
    let sent_list = alice.open("/messages").await;
    assert!(sent_list.has(">deleted<"));
}

#[tokio::test]
async fn the_compose_form_needs_its_token_first_and_from_this_origin() {
    let app = spawn_app(Backend::Sqlite).await.unwrap();
    let mut alice = Browser::new(&app);
    alice.enroll("alice@example.com").await;
    alice.open("/messages/new").await;
    let right = alice.csrf.clone();
    let fields = [
        ("to", "bob@example.com"),
        ("subject", "Forged"),
        ("body", BODY),
    ];
    let file: &[u8] = b"payload";
    let wrong = "A".repeat(43);
    for (site, csrf) in [
        ("same-origin", None),
        ("same-origin", Some(wrong.as_str())),
        ("same-origin", Some("")),
        ("cross-site", Some(right.as_str())),
        ("same-site", Some(right.as_str())),
    ] {
        let refused = Page::from(
            alice
                .compose_as(site, csrf, &fields, &[("x.txt", file)])
                .await,
        )
        .await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{site} {csrf:?}");
        assert!(refused.has("This form has expired"));
    }
    // The token must come first: after the other fields it is too late.
    let late = alice
        .compose_as(
            "same-origin",
            None,
            &[("to", "bob@example.com"), ("csrf", &right)],
            &[],
        )
        .await;
    assert_eq!(late.status(), StatusCode::FORBIDDEN);
    // Not multipart at all.
    let plain = alice
        .submit("/messages/new", &[("to", "bob@example.com")])
        .await;
    assert_eq!(plain.status(), StatusCode::BAD_REQUEST);
    assert!(message_links(&app, "bob@example.com").is_empty());
    assert!(
        app.service.find_user("bob@example.com").await.is_err(),
        "nobody was invited"
    );
    let list = alice.open("/messages").await;
    assert!(list.has("No messages sent."));
}

#[tokio::test]
async fn a_file_past_the_limit_or_a_wrong_address_sends_nothing() {
    let options = Options {
        attachment_limit_bytes: 1024,
        ..Options::default()
    };
    let app = spawn_app_with(Backend::Sqlite, options).await.unwrap();
    let mut alice = Browser::new(&app);
    alice.enroll("alice@example.com").await;
    app.create_user("bob@example.com", Some(PASSWORD), false)
        .await;
    let form = alice.open("/messages/new").await;
    assert!(form.has("Up to 20 files of at most 1 KiB each."));
    let fields = [
        ("to", "bob@example.com carol@example.com"),
        ("subject", "Too big"),
        ("body", BODY),
    ];
    let small = file_bytes(100, 1);
    let large = file_bytes(1025, 2);
    let refused = alice
        .compose(&fields, &[("small.txt", &small), ("large.bin", &large)])
        .await;
    let refused = Page::from(refused).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        refused.has("Each file may be at most 1 KiB"),
        "{}",
        refused.html
    );
    assert!(message_links(&app, "bob@example.com").is_empty());
    assert!(message_links(&app, "carol@example.com").is_empty());
    let list = alice.open("/messages").await;
    assert!(list.has("No messages sent."), "the drafts are gone");

    // A wrong address: the form again, with what was typed.
    let wrong = alice
        .compose(
            &[
                ("to", "bob@example.com, not-an-address"),
                ("subject", "Keep me"),
                ("body", "keep this text"),
                ("expires_in_days", "30"),
                ("delete_after_read", "yes"),
            ],
            &[("small.txt", &small)],
        )
        .await;
    let wrong = Page::from(wrong).await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(wrong.has("“not-an-address” cannot be used: the email address needs an @."));
    assert!(wrong.has("value=\"bob@example.com, not-an-address\""));
    assert!(wrong.has(">keep this text</textarea>"));
    assert!(wrong.has("<option value=\"30\" selected>30 days</option>"));
    assert!(wrong.has("name=\"delete_after_read\" value=\"yes\" checked"));
    assert!(wrong.has("Choose the files again"));
    // An empty subject, as the service words it.
    let empty = alice
        .compose(
            &[("to", "bob@example.com"), ("subject", " "), ("body", "x")],
            &[],
        )
        .await;
    assert_eq!(empty.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(Page::from(empty).await.has("The subject is empty."));
    assert!(message_links(&app, "bob@example.com").is_empty());
}
