//! Without a font (its own process: fonts register process-wide), plots are still written,
//! without text, and the report says so.

mod common;

use dapt_report::{REPORT_FILE, write_report};

#[test]
fn plots_without_font_have_no_text_but_exist() {
    let dir = tempfile::tempdir().unwrap();
    let summary = write_report(
        &common::input(),
        dir.path(),
        None,
        &["/nonexistent/font.ttf".into()],
    )
    .unwrap();
    assert_eq!(summary.font, None);
    assert_eq!(summary.plots.len(), 5);
    for plot in &summary.plots {
        let bytes = std::fs::read(dir.path().join(plot)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{plot}");
    }
    let text = std::fs::read_to_string(dir.path().join(REPORT_FILE)).unwrap();
    assert!(text.contains("Plots have no text"));
}
