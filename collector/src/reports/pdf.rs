//! A report as PDF (A4), written with `pdf-writer`: the base-14 Helvetica
//! fonts (nothing embedded; WinAnsi text), tables, and the charts drawn as
//! vector paths (daily peak bars against the allocation line, availability
//! per node). Text stays text, so `pdftotext` reads every figure back.

use pdf_writer::{Content, Finish, Name, Pdf, Rect, Ref, Str};

use super::text::{self, t, Lang};
use super::{Month, Report};

const W: f32 = 595.0;
const H: f32 = 842.0;
const M: f32 = 42.0;
const BODY: f32 = 9.0;
const REGULAR: Name<'static> = Name(b"F1");
const BOLD: Name<'static> = Name(b"F2");
/// Nodes drawn in the availability chart (worst first); the table has all.
const CHART_NODES: usize = 40;
const PDF_INCIDENTS: usize = 40;

/// Helvetica and Helvetica-Bold advance widths (1/1000 em), ' ' to '~'.
const HELVETICA: [u16; 95] = [
    278, 278, 355, 556, 556, 889, 667, 191, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 278, 278, 584, 584, 584, 556, 1015, 667, 667, 722, 722, 667,
    611, 778, 722, 278, 500, 667, 556, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 278, 278, 278, 469, 556, 333, 556, 556, 500, 556, 556, 278, 556, 556, 222, 222, 500,
    222, 833, 556, 556, 556, 556, 333, 500, 278, 556, 500, 722, 500, 500, 500, 334, 260, 334, 584,
];
const HELVETICA_BOLD: [u16; 95] = [
    278, 333, 474, 556, 556, 889, 722, 238, 333, 333, 389, 584, 278, 333, 278, 278, 556, 556, 556,
    556, 556, 556, 556, 556, 556, 556, 333, 333, 584, 584, 584, 611, 975, 722, 722, 722, 722, 667,
    611, 778, 722, 278, 556, 722, 611, 833, 722, 778, 667, 778, 722, 667, 611, 722, 667, 944, 667,
    667, 611, 333, 278, 333, 584, 556, 333, 556, 611, 556, 611, 556, 333, 611, 611, 278, 278, 556,
    278, 889, 611, 611, 611, 611, 389, 556, 333, 611, 556, 778, 556, 556, 500, 389, 280, 389, 584,
];

/// Text in WinAnsi (the fonts' encoding); what it cannot say becomes `?`.
fn win_ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| match c {
            ' '..='~' => c as u8,
            '\u{a0}'..='\u{ff}' => c as u32 as u8,
            '\u{2013}' => 0x96,
            '\u{2014}' => 0x97,
            '\u{2026}' => 0x85,
            '\u{2018}' => 0x91,
            '\u{2019}' => 0x92,
            '\u{201c}' => 0x93,
            '\u{201d}' => 0x94,
            '\u{2022}' => 0x95,
            _ => b'?',
        })
        .collect()
}

fn width(s: &[u8], size: f32, bold: bool) -> f32 {
    let table = if bold { &HELVETICA_BOLD } else { &HELVETICA };
    let units: u32 = s
        .iter()
        .map(|b| match b {
            32..=126 => u32::from(table[usize::from(*b - 32)]),
            _ => 556,
        })
        .sum();
    units as f32 * size / 1000.0
}

/// `s` cut to fit `max` points, with an ellipsis when cut.
fn fit(s: &str, max: f32, size: f32, bold: bool) -> Vec<u8> {
    let mut b = win_ansi(s);
    if width(&b, size, bold) <= max {
        return b;
    }
    while !b.is_empty() && width(&b, size, bold) + width(&[0x85], size, bold) > max {
        b.pop();
    }
    b.push(0x85);
    b
}

#[derive(Clone, Copy, PartialEq)]
enum Align {
    Left,
    Right,
}

struct Col {
    title: &'static str,
    width: f32,
    align: Align,
}

fn col(title: &'static str, width: f32, align: Align) -> Col {
    Col {
        title,
        width,
        align,
    }
}

struct Doc {
    lang: Lang,
    pages: Vec<Content>,
    cur: Content,
    y: f32,
}

impl Doc {
    fn new(lang: Lang) -> Doc {
        Doc {
            lang,
            pages: Vec::new(),
            cur: Content::new(),
            y: H - M,
        }
    }

    fn t(&self, key: &str) -> &'static str {
        t(self.lang, key)
    }

    fn text_bytes(&mut self, x: f32, y: f32, size: f32, bold: bool, b: &[u8]) {
        self.cur.set_fill_gray(0.0);
        self.cur
            .begin_text()
            .set_font(if bold { BOLD } else { REGULAR }, size)
            .next_line(x, y)
            .show(Str(b))
            .end_text();
    }

    fn text(&mut self, x: f32, y: f32, size: f32, bold: bool, s: &str) {
        let b = win_ansi(s);
        self.text_bytes(x, y, size, bold, &b);
    }

    fn text_right(&mut self, right: f32, y: f32, size: f32, bold: bool, s: &str) {
        let b = win_ansi(s);
        let w = width(&b, size, bold);
        self.text_bytes(right - w, y, size, bold, &b);
    }

    fn new_page(&mut self) {
        let done = std::mem::replace(&mut self.cur, Content::new());
        self.pages.push(done);
        self.y = H - M;
    }

    /// Room for `h` points more on this page, or a new page.
    fn ensure(&mut self, h: f32) {
        if self.y - h < M + 18.0 {
            self.new_page();
        }
    }

    fn heading(&mut self, s: &str) {
        self.ensure(60.0);
        self.y -= 18.0;
        self.text(M, self.y, 12.5, true, s);
        self.y -= 5.0;
        self.cur
            .set_stroke_rgb(0.13, 0.35, 0.62)
            .set_line_width(0.8)
            .move_to(M, self.y)
            .line_to(W - M, self.y)
            .stroke();
        self.y -= 6.0;
    }

    /// A label and its value on one line.
    fn kv(&mut self, label: &str, value: &str) {
        self.ensure(14.0);
        self.y -= 13.0;
        let l = win_ansi(label);
        let x = (M + 200.0).max(M + width(&l, BODY + 0.5, false) + 10.0);
        self.text_bytes(M, self.y, BODY + 0.5, false, &l);
        self.text(x, self.y, BODY + 0.5, true, value);
    }

    fn note(&mut self, s: &str) {
        self.ensure(13.0);
        self.y -= 12.0;
        self.text(M, self.y, BODY, false, s);
    }

    fn table(&mut self, cols: &[Col], rows: &[Vec<String>]) {
        let size = BODY - 0.5;
        let header = |d: &mut Doc| {
            d.ensure(30.0);
            d.y -= 13.0;
            let mut x = M;
            for c in cols {
                let title = d.t(c.title);
                let b = fit(title, c.width - 4.0, size, true);
                match c.align {
                    Align::Left => d.text_bytes(x, d.y, size, true, &b),
                    Align::Right => {
                        let w = width(&b, size, true);
                        d.text_bytes(x + c.width - 4.0 - w, d.y, size, true, &b)
                    }
                }
                x += c.width;
            }
            d.y -= 3.0;
            d.cur
                .set_stroke_gray(0.6)
                .set_line_width(0.4)
                .move_to(M, d.y)
                .line_to(M + cols.iter().map(|c| c.width).sum::<f32>(), d.y)
                .stroke();
        };
        header(self);
        for row in rows {
            if self.y - 12.0 < M + 18.0 {
                self.new_page();
                header(self);
            }
            self.y -= 11.5;
            let mut x = M;
            for (c, v) in cols.iter().zip(row) {
                let b = fit(v, c.width - 4.0, size, false);
                match c.align {
                    Align::Left => self.text_bytes(x, self.y, size, false, &b),
                    Align::Right => {
                        let w = width(&b, size, false);
                        self.text_bytes(x + c.width - 4.0 - w, self.y, size, false, &b)
                    }
                }
                x += c.width;
            }
        }
        self.y -= 4.0;
    }

    fn finish(mut self, title: &str) -> Vec<u8> {
        self.new_page();
        let mut pdf = Pdf::new();
        let catalog = Ref::new(1);
        let tree = Ref::new(2);
        let (regular, bold) = (Ref::new(3), Ref::new(4));
        let info = Ref::new(5);
        let n = self.pages.len();
        let page_ids: Vec<Ref> = (0..n).map(|i| Ref::new(10 + 2 * i as i32)).collect();
        pdf.catalog(catalog).pages(tree);
        pdf.pages(tree)
            .kids(page_ids.iter().copied())
            .count(n as i32);
        let footer = self.t("page");
        for (i, mut content) in self.pages.into_iter().enumerate() {
            // Footer: the title and "Halaman i / n".
            let f = win_ansi(&format!("{footer} {} / {n}", i + 1));
            let fw = width(&f, 7.5, false);
            content.set_fill_gray(0.35);
            content
                .begin_text()
                .set_font(REGULAR, 7.5)
                .next_line(M, M - 14.0)
                .show(Str(&win_ansi(title)))
                .end_text();
            content
                .begin_text()
                .set_font(REGULAR, 7.5)
                .next_line(W - M - fw, M - 14.0)
                .show(Str(&f))
                .end_text();
            let id = page_ids[i];
            let content_id = Ref::new(11 + 2 * i as i32);
            let mut page = pdf.page(id);
            page.media_box(Rect::new(0.0, 0.0, W, H));
            page.parent(tree);
            page.contents(content_id);
            let mut res = page.resources();
            let mut fonts = res.fonts();
            fonts.pair(REGULAR, regular);
            fonts.pair(BOLD, bold);
            fonts.finish();
            res.finish();
            page.finish();
            pdf.stream(content_id, &content.finish());
        }
        for (id, name) in [(regular, &b"Helvetica"[..]), (bold, &b"Helvetica-Bold"[..])] {
            pdf.type1_font(id)
                .base_font(Name(name))
                .encoding_predefined(Name(b"WinAnsiEncoding"));
        }
        pdf.document_info(info)
            .title(pdf_writer::TextStr(title))
            .producer(pdf_writer::TextStr("Simpul collector"));
        pdf.finish()
    }
}

/// Bars of each day's peak download rate, the allocation as a stepped line.
fn daily_chart(d: &mut Doc, r: &Report) {
    let (cw, ch) = (W - 2.0 * M - 40.0, 130.0);
    d.ensure(ch + 50.0);
    d.y -= 14.0;
    let title = d.t("daily_chart");
    d.text(M, d.y, BODY, true, title);
    let (x0, y0) = (M + 40.0, d.y - 10.0 - ch);
    let top = r
        .daily
        .iter()
        .map(|x| x.peak_in_bps.max(x.alloc_down_bps as f64))
        .fold(0.0, f64::max)
        .max(1e6)
        * 1.1;
    let days = Month::parse(&r.month)
        .map(|m| m.days())
        .unwrap_or(31)
        .max(1) as f32;
    let slot = cw / days;
    let yv = |v: f64| y0 + (v / top) as f32 * ch;
    // Grid and axis labels: 0, half, top.
    for k in 0..=4 {
        let v = top * f64::from(k) / 4.0;
        let y = yv(v);
        d.cur
            .set_stroke_gray(0.85)
            .set_line_width(0.3)
            .move_to(x0, y)
            .line_to(x0 + cw, y)
            .stroke();
        let label = text::dec2(d.lang, v / 1e6);
        d.text_right(x0 - 3.0, y - 2.5, 6.5, false, &label);
    }
    d.text(M, y0 + ch + 4.0, 6.5, false, "Mbit/s");
    d.cur.set_fill_rgb(0.22, 0.49, 0.78);
    for (i, day) in r.daily.iter().enumerate() {
        let h = (day.peak_in_bps / top) as f32 * ch;
        if h > 0.0 {
            d.cur
                .rect(x0 + i as f32 * slot + slot * 0.15, y0, slot * 0.7, h)
                .fill_nonzero();
        }
    }
    // The allocation, day by day.
    d.cur.set_stroke_rgb(0.8, 0.1, 0.1).set_line_width(1.2);
    let mut started = false;
    for (i, day) in r.daily.iter().enumerate() {
        if day.alloc_down_bps == 0 {
            started = false;
            continue;
        }
        let y = yv(day.alloc_down_bps as f64);
        let (xa, xb) = (x0 + i as f32 * slot, x0 + (i + 1) as f32 * slot);
        if started {
            d.cur.line_to(xa, y);
        } else {
            d.cur.move_to(xa, y);
            started = true;
        }
        d.cur.line_to(xb, y);
    }
    d.cur.stroke();
    d.cur
        .set_stroke_gray(0.3)
        .set_line_width(0.6)
        .move_to(x0, y0)
        .line_to(x0 + cw, y0)
        .stroke();
    for i in (0..days as usize).filter(|i| i % 5 == 0 || *i + 1 == days as usize) {
        d.text(
            x0 + i as f32 * slot + slot * 0.2,
            y0 - 9.0,
            6.5,
            false,
            &(i + 1).to_string(),
        );
    }
    d.y = y0 - 16.0;
}

/// Horizontal bars of availability per node, worst first.
fn availability_chart(d: &mut Doc, r: &Report) {
    let mut nodes: Vec<_> = r.availability.nodes.iter().collect();
    if nodes.is_empty() {
        return;
    }
    nodes.sort_by(|a, b| {
        a.availability_pct
            .unwrap_or(101.0)
            .total_cmp(&b.availability_pct.unwrap_or(101.0))
            .then(a.node_id.cmp(&b.node_id))
    });
    let shown = nodes.len().min(CHART_NODES);
    let bar_h = 9.0;
    d.ensure(30.0 + bar_h * shown.min(10) as f32);
    d.y -= 14.0;
    let title = d.t("availability_chart");
    d.text(M, d.y, BODY, true, title);
    d.y -= 4.0;
    let (x0, bw) = (M + 110.0, W - 2.0 * M - 170.0);
    for a in nodes.iter().take(shown) {
        d.ensure(bar_h + 2.0);
        d.y -= bar_h + 2.0;
        let label = fit(&a.node_id, 105.0, 7.0, false);
        d.text_bytes(M, d.y + 1.5, 7.0, false, &label);
        d.cur
            .set_fill_gray(0.92)
            .rect(x0, d.y, bw, bar_h)
            .fill_nonzero();
        if let Some(p) = a.availability_pct {
            let (r_, g) = if p >= 99.0 {
                (0.18, 0.6)
            } else if p >= 95.0 {
                (0.85, 0.6)
            } else {
                (0.8, 0.15)
            };
            d.cur
                .set_fill_rgb(r_, g, 0.2)
                .rect(x0, d.y, bw * (p / 100.0) as f32, bar_h)
                .fill_nonzero();
        }
        let v = text::pct(d.lang, a.availability_pct);
        d.text_right(W - M, d.y + 1.5, 7.0, false, &v);
    }
    if nodes.len() > shown {
        let more = format!("+{} {}", nodes.len() - shown, d.t("more"));
        d.note(&more);
    }
    d.y -= 6.0;
}

/// The PDF of `r` in `lang`.
pub fn write(r: &Report, lang: Lang) -> Vec<u8> {
    let mut d = Doc::new(lang);
    let l = lang;
    let off = r
        .utc_offset
        .get(..3)
        .and_then(|h| h.parse::<i32>().ok())
        .map_or(7 * 3600, |h| h * 3600);
    let month = Month::parse(&r.month).unwrap_or(Month {
        year: 1970,
        month: 1,
    });
    let scope = match &r.agency {
        Some(code) if !r.name.is_empty() && r.name != *code => format!("{} ({code})", r.name),
        Some(code) => code.clone(),
        None => t(l, "province").to_string(),
    };
    let title = format!(
        "{} - {}",
        t(l, "title"),
        text::month_name(l, month.year, month.month)
    );
    d.y -= 4.0;
    d.text(M, d.y, 16.0, true, t(l, "title"));
    d.y -= 20.0;
    d.text(
        M,
        d.y,
        12.0,
        false,
        &format!("{} · {scope}", text::month_name(l, month.year, month.month)),
    );
    d.y -= 6.0;
    let start_ms = super::Month::start(month, off) * 1000;
    let end_ms = super::Month::end(month, off) * 1000;
    let generated =
        simpul_proto::time_format::parse_rfc3339(&r.generated_at).map_or(0, |ns| ns / 1_000_000);
    let mut period = format!(
        "{} - {}",
        text::local_time(start_ms, off),
        text::local_time(end_ms, off)
    );
    if !r.complete {
        period.push_str(&format!(" ({})", t(l, "until_now")));
    }
    d.kv(t(l, "agency"), &scope);
    d.kv(t(l, "period"), &period);
    d.kv(t(l, "time_zone"), &format!("UTC{}", r.utc_offset));
    d.kv(t(l, "generated"), &text::local_time(generated, off));

    // Usage.
    let u = &r.usage;
    d.heading(t(l, "usage"));
    let exact = |v: u64| format!("{} ({} B)", text::bytes(l, v), text::int(l, v));
    d.kv(t(l, "bytes_in"), &exact(u.bytes_in));
    d.kv(t(l, "bytes_out"), &exact(u.bytes_out));
    d.kv(t(l, "inet_in"), &exact(u.internet_bytes_in));
    d.kv(t(l, "inet_out"), &exact(u.internet_bytes_out));
    let alloc = |v: u64| {
        if v == 0 {
            t(l, "none").to_string()
        } else {
            text::rate(l, v as f64)
        }
    };
    d.kv(t(l, "alloc_down"), &alloc(u.alloc_down_bps));
    d.kv(t(l, "alloc_up"), &alloc(u.alloc_up_bps));
    d.kv(t(l, "peak_in"), &text::rate(l, u.rates.peak_in_bps));
    d.kv(t(l, "peak_out"), &text::rate(l, u.rates.peak_out_bps));
    d.kv(t(l, "p95_in"), &text::rate(l, u.rates.p95_in_bps));
    d.kv(t(l, "p95_out"), &text::rate(l, u.rates.p95_out_bps));
    for (key, v) in [
        ("peak_1s_in", u.peak_1s_in_bps),
        ("peak_1s_out", u.peak_1s_out_bps),
        ("p95_1s_in", u.p95_1s_in_bps),
        ("p95_1s_out", u.p95_1s_out_bps),
    ] {
        if let Some(v) = v {
            d.kv(t(l, key), &text::rate(l, v as f64));
        }
    }
    let hours = |n: u32| {
        format!(
            "{n} {} {} {}",
            t(l, "hours"),
            t(l, "of_hours"),
            u.hours_with_allocation
        )
    };
    d.kv(t(l, "hours_in"), &hours(u.hours_above_95_in));
    d.kv(t(l, "hours_out"), &hours(u.hours_above_95_out));
    d.note(&format!(
        "({})",
        t(
            l,
            if u.rates.rate_step_secs <= 60 {
                "per_minute"
            } else {
                "per_hour"
            }
        )
    ));
    daily_chart(&mut d, r);

    // Province: each agency.
    if !r.agencies.is_empty() {
        d.heading(t(l, "agencies"));
        let rows: Vec<Vec<String>> = r
            .agencies
            .iter()
            .map(|a| {
                vec![
                    a.code.clone(),
                    a.name.clone(),
                    text::bytes(l, a.bytes_in),
                    text::bytes(l, a.bytes_out),
                    alloc(a.alloc_down_bps),
                    text::pct(l, a.availability_pct),
                    a.incidents.to_string(),
                ]
            })
            .collect();
        d.table(
            &[
                col("agency", 60.0, Align::Left),
                col("name", 120.0, Align::Left),
                col("in_short", 70.0, Align::Right),
                col("out_short", 70.0, Align::Right),
                col("alloc_short", 70.0, Align::Right),
                col("avail_pct", 65.0, Align::Right),
                col("incidents", 56.0, Align::Right),
            ],
            &rows,
        );
    }

    // Availability.
    d.heading(t(l, "availability"));
    d.kv(t(l, "overall"), &text::pct(l, r.availability.overall_pct));
    let dur = |ms: u64| text::duration(l, Some(ms as f64 / 1000.0));
    let rows: Vec<Vec<String>> = r
        .availability
        .nodes
        .iter()
        .map(|a| {
            let pct = match a.availability_pct {
                None => t(l, "not_enrolled").to_string(),
                Some(_) if a.never_seen => {
                    format!(
                        "{} ({})",
                        text::pct(l, a.availability_pct),
                        t(l, "never_seen")
                    )
                }
                Some(_) => text::pct(l, a.availability_pct),
            };
            vec![
                a.node_id.clone(),
                a.agency.clone(),
                pct,
                dur(a.down_ms),
                dur(a.maintenance_ms),
                dur(a.unreachable_ms),
                a.incidents.to_string(),
            ]
        })
        .collect();
    d.table(
        &[
            col("node", 88.0, Align::Left),
            col("agency", 50.0, Align::Left),
            col("avail_pct", 142.0, Align::Right),
            col("down", 52.0, Align::Right),
            col("maintenance", 62.0, Align::Right),
            col("unreachable", 68.0, Align::Right),
            col("incidents", 40.0, Align::Right),
        ],
        &rows,
    );
    availability_chart(&mut d, r);

    // Incidents by severity.
    d.heading(t(l, "incidents_title"));
    if r.incidents.total == 0 {
        d.note(t(l, "no_incidents"));
    } else {
        let secs = |v: Option<f64>| text::duration(l, v);
        let rows: Vec<Vec<String>> = r
            .incidents
            .by_severity
            .iter()
            .map(|s| {
                let st = &s.stats;
                vec![
                    text::severity(l, &s.severity),
                    st.incidents.to_string(),
                    st.acknowledged.to_string(),
                    st.resolved.to_string(),
                    secs(st.mean_ack_secs),
                    secs(st.max_ack_secs),
                    secs(st.mean_resolve_secs),
                    secs(st.max_resolve_secs),
                ]
            })
            .collect();
        d.table(
            &[
                col("severity", 60.0, Align::Left),
                col("incidents", 50.0, Align::Right),
                col("acknowledged", 60.0, Align::Right),
                col("resolved", 50.0, Align::Right),
                col("mean_ack", 70.0, Align::Right),
                col("max_ack", 70.0, Align::Right),
                col("mean_resolve", 76.0, Align::Right),
                col("max_resolve", 70.0, Align::Right),
            ],
            &rows,
        );
        d.kv(
            t(l, "in_maintenance"),
            &r.incidents.in_maintenance.to_string(),
        );
        d.kv(
            t(l, "unreachable_spells"),
            &r.incidents.unreachable.to_string(),
        );
        d.y -= 6.0;
        d.ensure(40.0);
        d.y -= 12.0;
        d.text(M, d.y, BODY, true, t(l, "incident_list"));
        let rows: Vec<Vec<String>> = r
            .incidents
            .list
            .iter()
            .take(PDF_INCIDENTS)
            .map(|i| {
                let ack = i
                    .acked_ms
                    .map(|a| a.saturating_sub(i.detected_ms) as f64 / 1000.0);
                let res = i
                    .resolved_ms
                    .map(|x| x.saturating_sub(i.started_ms) as f64 / 1000.0);
                let kind = if i.maintenance {
                    format!("{} ({})", i.kind, t(l, "maintenance").to_lowercase())
                } else {
                    i.kind.clone()
                };
                vec![
                    text::local_time(i.started_ms, off),
                    i.node_id.clone(),
                    kind,
                    text::severity(l, &i.severity),
                    secs(ack),
                    match res {
                        Some(_) => secs(res),
                        None => t(l, "open").to_string(),
                    },
                ]
            })
            .collect();
        d.table(
            &[
                col("started", 85.0, Align::Left),
                col("node", 110.0, Align::Left),
                col("kind", 120.0, Align::Left),
                col("severity", 55.0, Align::Left),
                col("to_ack", 70.0, Align::Right),
                col("to_resolve", 70.0, Align::Right),
            ],
            &rows,
        );
        if r.incidents.total as usize > PDF_INCIDENTS {
            d.note(&format!(
                "+{} {}",
                r.incidents.total as usize - PDF_INCIDENTS,
                t(l, "more")
            ));
        }
    }

    // Top sites.
    d.heading(t(l, "top_sites"));
    if r.top_sites.is_empty() {
        d.note(t(l, "no_sites"));
    } else {
        let rows: Vec<Vec<String>> = r
            .top_sites
            .iter()
            .map(|s| {
                vec![
                    s.site.clone(),
                    text::bytes(l, s.bytes),
                    text::int(l, s.bytes),
                    text::int(l, s.flows),
                ]
            })
            .collect();
        d.table(
            &[
                col("site", 220.0, Align::Left),
                col("bytes", 80.0, Align::Right),
                col("bytes", 130.0, Align::Right),
                col("flows", 80.0, Align::Right),
            ],
            &rows,
        );
    }

    // Blocked attempts by category.
    d.heading(t(l, "blocked"));
    d.kv(t(l, "blocked_total"), &text::int(l, r.blocked.attempts));
    if r.blocked.categories.is_empty() {
        d.note(t(l, "no_blocked"));
    } else {
        let rows: Vec<Vec<String>> = r
            .blocked
            .categories
            .iter()
            .map(|c| {
                vec![
                    c.category.clone(),
                    text::int(l, c.attempts),
                    text::int(l, c.clients),
                    text::int(l, c.targets),
                ]
            })
            .collect();
        d.table(
            &[
                col("category", 200.0, Align::Left),
                col("attempts", 100.0, Align::Right),
                col("clients", 100.0, Align::Right),
                col("targets", 100.0, Align::Right),
            ],
            &rows,
        );
    }

    // Policy changes.
    d.heading(t(l, "policy"));
    if r.policy_changes.is_empty() {
        d.note(t(l, "no_policy"));
    } else {
        let rows: Vec<Vec<String>> = r
            .policy_changes
            .iter()
            .map(|p| {
                let scope = if p.scope == "default" {
                    t(l, "default_policy").to_string()
                } else {
                    p.scope.clone()
                };
                let mut summary = p.comment.clone();
                if !p.changes.is_empty() {
                    summary.push_str(&format!(" [{}]", p.changes.join(", ")));
                }
                vec![
                    text::local_time(p.at_ms, off),
                    scope,
                    p.version.to_string(),
                    p.by.clone(),
                    summary,
                ]
            })
            .collect();
        d.table(
            &[
                col("when", 80.0, Align::Left),
                col("agency", 60.0, Align::Left),
                col("version", 40.0, Align::Right),
                col("who", 75.0, Align::Left),
                col("summary", 256.0, Align::Left),
            ],
            &rows,
        );
    }
    d.finish(&title)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_win_ansi_and_cut_to_fit() {
        assert_eq!(
            win_ansi("Rp 1.000 · é…"),
            b"Rp 1.000 \xb7 \xe9\x85".to_vec()
        );
        assert_eq!(win_ansi("日本"), b"??".to_vec());
        let long = "a-very-long-node-name-that-does-not-fit";
        let cut = fit(long, 60.0, 8.0, false);
        assert!(width(&cut, 8.0, false) <= 60.0);
        assert_eq!(cut.last(), Some(&0x85));
        assert_eq!(fit("ok", 60.0, 8.0, false), b"ok".to_vec());
    }
}
