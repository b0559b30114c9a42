//! The HTML part of an email, built from its text part: the text escaped, blank-line separated
//! paragraphs, and a line that is a one-time code on its own shown large in a monospace block,
//! so that the two parts always say the same thing.

/// A line of 4 to 10 digits and nothing else is a one-time code (the contract's codes are 6).
fn is_code_line(line: &str) -> bool {
    let line = line.trim();
    (4..=10).contains(&line.len()) && line.bytes().all(|byte| byte.is_ascii_digit())
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for character in text.chars() {
        match character {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            other => escaped.push(other),
        }
    }
    escaped
}

/// A complete HTML document for an email with this subject and text body. Each paragraph is on
/// a line of its own, which keeps the lines of the encoded part short.
pub fn from_text(subject: &str, text: &str) -> String {
    let mut html = String::from("<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n");
    html.push_str(&format!("<title>{}</title>\n</head>\n", escape(subject)));
    html.push_str("<body style=\"font-family: sans-serif; line-height: 1.5; color: #1a1a1a;\">\n");
    let mut paragraph: Vec<&str> = Vec::new();
    let normalised = text.replace("\r\n", "\n");
    for line in normalised.lines() {
        if line.trim().is_empty() {
            push_paragraph(&mut html, &paragraph);
            paragraph.clear();
        } else if is_code_line(line) {
            push_paragraph(&mut html, &paragraph);
            paragraph.clear();
            html.push_str(&format!(
                "<pre style=\"font-family: ui-monospace, Menlo, Consolas, monospace; \
                 font-size: 2em; letter-spacing: 0.2em; margin: 1em 0;\"><code>{}</code></pre>\n",
                escape(line.trim())
            ));
        } else {
            paragraph.push(line);
        }
    }
    push_paragraph(&mut html, &paragraph);
    html.push_str("</body>\n</html>\n");
    html
}

fn push_paragraph(html: &mut String, lines: &[&str]) {
    if lines.is_empty() {
        return;
    }
    let escaped: Vec<String> = lines.iter().map(|line| escape(line)).collect();
    html.push_str(&format!("<p>{}</p>\n", escaped.join("<br>\n")));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_line_becomes_a_monospace_block_and_paragraphs_stay_paragraphs() {
        let html = from_text(
            "Your code",
            "Hello,\nyour sign-in code is:\n\n123456\n\nIt expires in 10 minutes.\n",
        );
        assert!(html.contains("<title>Your code</title>"), "{html}");
        assert!(
            html.contains("<p>Hello,<br>\nyour sign-in code is:</p>"),
            "{html}"
        );
        assert!(html.contains("monospace"), "{html}");
        assert!(html.contains("><code>123456</code></pre>"), "{html}");
        assert!(html.contains("<p>It expires in 10 minutes.</p>"), "{html}");
    }

    #[test]
    fn text_is_escaped() {
        let html = from_text("<b>\"x\"</b>", "a < b & c > 'd'\n<script>alert(1)</script>");
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("a &lt; b &amp; c &gt; &#39;d&#39;"), "{html}");
        assert!(
            html.contains("<title>&lt;b&gt;&quot;x&quot;&lt;/b&gt;</title>"),
            "{html}"
        );
    }

    #[test]
    fn only_a_run_of_digits_alone_on_its_line_is_a_code() {
        assert!(is_code_line("123456"));
        assert!(is_code_line("  12345678 "));
        assert!(!is_code_line("123"));
        assert!(!is_code_line("Code 123456"));
        assert!(!is_code_line("12345678901"));
        assert!(
            !is_code_line("１２３４５６"),
            "full-width digits are not ASCII"
        );
    }
}
