//! Parsing and detection against TDLib's behaviour, and a fuzz test.

use super::*;
use ParseMode::{Html, Markdown, MarkdownV2};

/// Entities as "kind:offset+length[=extra]" separated by spaces.
fn show(entities: &[Entity]) -> String {
    let mut shown = Vec::new();
    for e in entities {
        let id = e.user_id.map(|id| id.to_string());
        let extras = [&e.url, &e.language, &id, &e.custom_emoji_id];
        let extra = extras.into_iter().flatten().map(|x| format!("={x}")).collect::<String>();
        shown.push(format!("{}:{}+{}{extra}", e.kind, e.offset, e.length));
    }
    shown.join(" ")
}

/// `"text" entities...` on success, `ERR detail` on failure.
fn run(mode: ParseMode, src: &str) -> String {
    match parse(src, mode) {
        Ok(f) => format!("{:?} {}", f.text, show(&f.entities)).trim_end().to_string(),
        Err(e) => format!("ERR {e}"),
    }
}

fn check(mode: ParseMode, cases: &[(&str, &str)]) {
    for (src, want) in cases {
        assert_eq!(run(mode, src), *want, "input {src:?}");
    }
}

#[test]
fn parse_modes_and_utf16() {
    assert_eq!(ParseMode::parse("html"), Some(Html));
    assert_eq!(ParseMode::parse("MARKDOWNV2"), Some(MarkdownV2));
    assert_eq!(ParseMode::parse("Markdown"), Some(Markdown));
    assert_eq!(ParseMode::parse("md"), None);
    assert_eq!((utf16_len("abc"), utf16_len("😀"), utf16_len("привет")), (3, 2, 6));
}

#[test]
#[rustfmt::skip]
fn html_tags() {
    for (tags, kind) in [
        ("b strong", "bold"),
        ("i em", "italic"),
        ("u ins", "underline"),
        ("s strike del", "strikethrough"),
        ("tg-spoiler", "spoiler"),
        ("code", "code"),
        ("pre", "pre"),
        ("blockquote", "blockquote"),
    ] {
        for tag in tags.split(' ') {
            assert_eq!(run(Html, &format!("x <{tag}>abc</{tag}> y")), format!("\"x abc y\" {kind}:2+3"));
        }
    }
    check(Html, &[
        (r#"<span class="tg-spoiler">s</span><B>b</B>"#, r#""sb" spoiler:0+1 bold:1+1"#),
        ("<blockquote expandable>q</blockquote>", r#""q" expandable_blockquote:0+1"#),
        (r#"<a href="https://ex.com">site</a> <a href='tg://user?id=42'>bob</a>"#, r#""site bob" text_link:0+4=https://ex.com/ text_mention:5+3=42"#),
        ("<a href=telegram.org>t</a><a>http://a.io/x</a><a href=x>y</a>", r#""thttp://a.io/xy" text_link:0+1=http://telegram.org/ text_link:1+13=http://a.io/x"#),
        (r#"<pre><code class="language-rust">fn x</code></pre>"#, r#""fn x" pre:0+4=rust"#),
        (r#"<pre><code>plain</code></pre><code class="language-c">c</code>"#, r#""plainc" pre:0+5 code:5+1"#),
        (r#"<tg-emoji emoji-id="5368324170671202286">👍</tg-emoji>"#, r#""👍" custom_emoji:0+2=5368324170671202286"#),
        ("<i>it <b>both</b></i>", r#""it both" italic:0+7 bold:3+4"#),
        ("<b><i>x</i></b>", r#""x" bold:0+1 italic:0+1"#),
        ("<code><b>x</b></code>", r#""x" code:0+1"#),
        ("<b>a<code>c</code>d</b>", r#""acd" bold:0+1 code:1+1 bold:2+1"#),
        ("&lt;b&gt; &amp; &quot; &#65;&#x42; &nbsp; & a > b &amp", r#""<b> & \" AB &nbsp; & a > b &""#),
        ("&#x1F600;<b>x</b>", r#""😀x" bold:2+1"#),
        (r#"<a href="http://x.io/?a=1&amp;b=2">l</a>"#, r#""l" text_link:0+1=http://x.io/?a=1&b=2"#),
        ("😀 <b>hi</b>", r#""😀 hi" bold:3+2"#),
        ("привет <i>мир😀</i>", r#""привет мир😀" italic:7+5"#),
        ("<b></b>x<b>y</>", r#""xy" bold:1+1"#),
    ]);
}

#[test]
#[rustfmt::skip]
fn html_errors() {
    check(Html, &[
        ("a <foo>b</foo>", r#"ERR Unsupported start tag "foo" at byte offset 2"#),
        ("a < b", r#"ERR Unsupported start tag "" at byte offset 2"#),
        ("a <b", "ERR Unclosed start tag at byte offset 2"),
        ("<b>bold", r#"ERR Can't find end tag corresponding to start tag "b""#),
        ("<b><i>x</b></i>", r#"ERR Unmatched end tag at byte offset 7, expected "</i>", found "</b>""#),
        ("x</b>", "ERR Unexpected end tag at byte offset 1"),
        ("<b>x</b", "ERR Unclosed end tag at byte offset 4"),
        (r#"<a href="x"/>"#, r#"ERR Empty attribute name in the tag "a" at byte offset 0"#),
        ("<a href=x/>", "ERR Unexpected end of name token at byte offset 8"),
        ("<a href", r#"ERR Unclosed start tag "a" at byte offset 0"#),
        (r#"<a href="x"#, "ERR Unclosed start tag at byte offset 0"),
        ("<span>x</span>", r#"ERR Tag "span" must have class "tg-spoiler" at byte offset 0"#),
        ("<tg-emoji emoji-id=x>👍</tg-emoji>", "ERR Invalid custom emoji identifier specified"),
        ("&#xD800;", "ERR Text contains invalid Unicode characters after decoding HTML entities, check for unmatched surrogate code units"),
    ]);
}

#[test]
#[rustfmt::skip]
fn markdown_v2() {
    check(MarkdownV2, &[
        (r"*bold \*text* _it_ __u__ ~s~ ||sp|| `c\`d`", r#""bold *text it u s sp c`d" bold:0+10 italic:11+2 underline:14+1 strikethrough:16+1 spoiler:18+2 code:21+3"#),
        (r"[l](http://a.io/\)) ![👍](tg://emoji?id=5) [bob](tg://user?id=7) [x](nonsense)", r#""l 👍 bob x" text_link:0+1=http://a.io/) custom_emoji:2+2=5 text_mention:5+3=7"#),
        ("😀 *hi* **x", r#""😀 hi x" bold:3+2"#),
        ("```python\nprint(1) # *not bold*\n```", r#""print(1) # *not bold*\n" pre:0+22=python"#),
        ("```\nx\\`y``` `a_b.c`", r#""x`y a_b.c" pre:0+3 code:4+5"#),
        (">quote\n>more\nafter", r#""quote\nmore\nafter" blockquote:0+11"#),
        ("**>hidden\n>text||", r#""hidden\ntext" expandable_blockquote:0+11"#),
        ("**>a||\nb", r#""a\nb" expandable_blockquote:0+2"#),
        ("a\\", r#""a\\""#),
    ]);
    let docs = "*bold _italic bold ~italic bold strikethrough ||italic bold strikethrough spoiler||~ __underline italic bold___ bold*";
    let kinds: Vec<String> = ok_entities(docs).into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["bold", "italic", "strikethrough", "spoiler", "underline"]);
    assert_eq!(ok_entities("___a_\r__").len(), 2);
    for c in "_*[]()~`>#+-=|{}.!".chars() {
        assert_eq!(run(MarkdownV2, &format!("\\{c}")), format!("{:?}", c.to_string()));
    }
}

fn ok_entities(src: &str) -> Vec<Entity> {
    parse(src, MarkdownV2).map(|f| f.entities).unwrap_or_default()
}

#[test]
#[rustfmt::skip]
fn markdown_v2_errors() {
    check(MarkdownV2, &[
        ("Version 1.0", r"ERR Character '.' is reserved and must be escaped with the preceding '\'"),
        ("a - b", r"ERR Character '-' is reserved and must be escaped with the preceding '\'"),
        ("a>b", r"ERR Character '>' is reserved and must be escaped with the preceding '\'"),
        ("🏟 🏟_abacaba", "ERR Can't find end of Italic entity at byte offset 9"),
        ("🏟 🏟_abac * asd ", "ERR Can't find end of Bold entity at byte offset 15"),
        ("x __u", "ERR Can't find end of Underline entity at byte offset 2"),
        ("~s", "ERR Can't find end of Strikethrough entity at byte offset 0"),
        ("||s", "ERR Can't find end of Spoiler entity at byte offset 0"),
        ("`c", "ERR Can't find end of Code entity at byte offset 0"),
        ("```c", "ERR Can't find end of Pre entity at byte offset 0"),
        ("```rust\nc", "ERR Can't find end of PreCode entity at byte offset 0"),
        ("[l", "ERR Can't find end of TextUrl entity at byte offset 0"),
        (">*a\nb*", "ERR Can't find end of Bold entity at byte offset 1"),
        ("[l](http://a.io", "ERR Can't find end of a URL at byte offset 4"),
        ("![x]", "ERR Custom emoji entity must contain a tg://emoji URL"),
        ("![x](http://a.io)", "ERR Custom emoji URL must have scheme tg"),
        ("![x](tg://emoji?id=0)", "ERR Invalid custom emoji identifier specified"),
    ]);
}

#[test]
#[rustfmt::skip]
fn markdown_legacy() {
    check(Markdown, &[
        ("*bold* _it_ `co_de` ```rust\nfn x```", r#""bold it co_de fn x" bold:0+4 italic:5+2 code:8+5 pre:14+4=rust"#),
        ("[l](http://a.io) [t.me/x] [u](tg://user?id=9)", r#""l t.me/x u" text_link:0+1=http://a.io/ text_link:2+6=http://t.me/x text_mention:9+1=9"#),
        (r"*no _nesting_* snake\_case 1.5 + (2) я _ты_ **x", r#""no _nesting_ snake_case 1.5 + (2) я ты x" bold:0+12 italic:36+2"#),
        ("hello *world", "ERR Can't find end of the entity starting at byte offset 6"),
        ("```\ncode``", "ERR Can't find end of the entity starting at byte offset 0"),
    ]);
}

#[test]
fn detection_and_merge() {
    let text = "/start /help@my_bot a/b /x@ab @user_name @abc a@host.com #tag #123 https://t.me/a).";
    assert_eq!(show(&detect(text)), "bot_command:0+6 bot_command:7+12 mention:30+10 hashtag:57+4 url:67+14");
    let text = "привет 😀 /cmd и https://пример.рф/путь";
    assert_eq!(show(&detect(text)), "bot_command:10+4 url:17+22");
    assert_eq!(show(&detect("word/start @a_b http:// #_ #1")), "");
    let f = parse("<b>/start</b> <code>/help</code> @username", Html).unwrap_or_else(|e| panic!("{e}"));
    let merged = merge(f.entities, detect(&f.text));
    assert_eq!(show(&merged), "bot_command:0+6 bold:0+6 code:7+5 mention:13+9");
}

#[test]
fn fuzz_never_panics_and_stays_in_bounds() {
    #[rustfmt::skip]
    const PIECES: &[&str] = &[
        "*", "_", "__", "~", "||", "|", "`", "```", "[", "]", "(", ")", "!", ">", "\\", "\n", "\r", "a", "b ", "😀", "я",
        "<b>", "</b>", "<i>", "</i>", "</>", "<", "&", "&amp;", "&#x1F600;", "&#55357;", "<a href=\"http://x.io\">", "<a>",
        "</a>", "<pre>", "</pre>", "<code class=\"language-rs\">", "</code>", "<blockquote expandable>", "</blockquote>",
        "<span class=tg-spoiler>", "</span>", "<tg-emoji emoji-id=5>", "</tg-emoji>", "/cmd", "@username", "#tag",
        "https://t.me/x", "(tg://user?id=5)", "**>", "![", "rust\n", "=", "'", "\"", " ",
    ];
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let in_bounds = |text: &str, entities: &[Entity]| {
        let len = utf16_len(text);
        entities.iter().all(|e| e.length > 0 && e.end() <= len)
    };
    for _ in 0..4000 {
        let n = next() % 24;
        let src: String = (0..n).map(|_| PIECES[(next() % PIECES.len() as u64) as usize]).collect();
        assert!(in_bounds(&src, &detect(&src)), "{src:?}");
        for mode in [Html, MarkdownV2, Markdown] {
            if let Ok(f) = parse(&src, mode) {
                assert!(in_bounds(&f.text, &merge(f.entities, detect(&f.text))), "{mode:?} {src:?}");
            }
        }
    }
}
