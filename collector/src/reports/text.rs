//! The words and number formats of a report, Bahasa Indonesia first.

/// The report's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    Id,
    En,
}

impl Lang {
    pub fn parse(s: &str) -> Option<Lang> {
        match s {
            "id" => Some(Lang::Id),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Id => "id",
            Lang::En => "en",
        }
    }
}

/// The text of `key` in `lang` (the key itself when there is none, which a
/// test forbids).
pub fn t(lang: Lang, key: &str) -> &'static str {
    let (id, en) = match key {
        "report_file" => ("laporan", "report"),
        "province_file" => ("provinsi", "province"),
        "title" => ("Laporan Bulanan Jaringan Intra", "Monthly Intranet Report"),
        "province" => ("Seluruh provinsi", "Whole province"),
        "agency" => ("Instansi", "Agency"),
        "period" => ("Periode", "Period"),
        "until_now" => (
            "sampai saat laporan dibuat",
            "up to when the report was made",
        ),
        "generated" => ("Dibuat", "Generated"),
        "time_zone" => ("Zona waktu", "Time zone"),
        "usage" => ("Pemakaian terhadap alokasi", "Usage against the allocation"),
        "bytes_in" => ("Total masuk (unduh)", "Total in (download)"),
        "bytes_out" => ("Total keluar (unggah)", "Total out (upload)"),
        "inet_in" => ("Internet masuk", "Internet in"),
        "inet_out" => ("Internet keluar", "Internet out"),
        "alloc_down" => (
            "Alokasi unduh (akhir periode)",
            "Download allocation (end of period)",
        ),
        "alloc_up" => (
            "Alokasi unggah (akhir periode)",
            "Upload allocation (end of period)",
        ),
        "peak_in" => ("Puncak unduh", "Peak download"),
        "peak_out" => ("Puncak unggah", "Peak upload"),
        "p95_in" => ("Persentil 95 unduh", "95th percentile download"),
        "p95_out" => ("Persentil 95 unggah", "95th percentile upload"),
        "peak_1s_in" => ("Puncak per detik unduh", "Peak second download"),
        "peak_1s_out" => ("Puncak per detik unggah", "Peak second upload"),
        "p95_1s_in" => (
            "Persentil 95 per detik unduh",
            "95th percentile of seconds, download",
        ),
        "p95_1s_out" => (
            "Persentil 95 per detik unggah",
            "95th percentile of seconds, upload",
        ),
        "hours_in" => (
            "Jam di atas 95% alokasi (unduh)",
            "Hours above 95% of allocation (download)",
        ),
        "hours_out" => (
            "Jam di atas 95% alokasi (unggah)",
            "Hours above 95% of allocation (upload)",
        ),
        "of_hours" => ("dari", "of"),
        "hours" => ("jam", "hours"),
        "per_minute" => ("rata-rata per menit", "per-minute averages"),
        "per_hour" => ("rata-rata per jam", "hourly averages"),
        "none" => ("tidak ada", "none"),
        "daily_chart" => (
            "Puncak unduh harian (batang) terhadap alokasi (garis)",
            "Daily peak download (bars) against the allocation (line)",
        ),
        "availability" => ("Ketersediaan node", "Node availability"),
        "overall" => ("Ketersediaan keseluruhan", "Overall availability"),
        "node" => ("Node", "Node"),
        "avail_pct" => ("Ketersediaan", "Availability"),
        "down" => ("Padam", "Down"),
        "maintenance" => ("Pemeliharaan", "Maintenance"),
        "unreachable" => ("Tak terjangkau", "Unreachable"),
        "not_enrolled" => ("Belum terdaftar", "Not enrolled"),
        "never_seen" => ("belum pernah terhubung", "never connected"),
        "incidents" => ("Insiden", "Incidents"),
        "availability_chart" => ("Ketersediaan per node", "Availability per node"),
        "incidents_title" => ("Insiden per tingkat", "Incidents by severity"),
        "severity" => ("Tingkat", "Severity"),
        "acknowledged" => ("Diterima", "Acknowledged"),
        "resolved" => ("Selesai", "Resolved"),
        "mean_ack" => ("Rata-rata terima", "Mean to ack."),
        "max_ack" => ("Maks. terima", "Max. to ack."),
        "mean_resolve" => ("Rata-rata selesai", "Mean to resolve"),
        "max_resolve" => ("Maks. selesai", "Max. to resolve"),
        "in_maintenance" => (
            "Saat pemeliharaan (tidak dihitung)",
            "During maintenance (not counted)",
        ),
        "unreachable_spells" => (
            "Tak terjangkau (tidak dihitung)",
            "Unreachable (not counted)",
        ),
        "no_incidents" => ("Tidak ada insiden.", "No incidents."),
        "incident_list" => ("Daftar insiden", "Incident list"),
        "kind" => ("Jenis", "Kind"),
        "started" => ("Mulai", "Started"),
        "to_ack" => ("Terima", "Ack."),
        "to_resolve" => ("Selesai", "Resolve"),
        "open" => ("terbuka", "open"),
        "top_sites" => ("Situs teratas", "Top sites"),
        "site" => ("Situs", "Site"),
        "bytes" => ("Volume", "Volume"),
        "flows" => ("Aliran", "Flows"),
        "no_sites" => ("Tidak ada data situs.", "No site data."),
        "blocked" => (
            "Percobaan akses yang diblokir per kategori",
            "Blocked attempts by category",
        ),
        "category" => ("Kategori", "Category"),
        "attempts" => ("Percobaan", "Attempts"),
        "clients" => ("Klien", "Clients"),
        "targets" => ("Tujuan", "Targets"),
        "blocked_total" => ("Total percobaan diblokir", "Blocked attempts in total"),
        "no_blocked" => ("Tidak ada percobaan yang diblokir.", "No blocked attempts."),
        "policy" => ("Perubahan kebijakan", "Policy changes"),
        "version" => ("Versi", "Version"),
        "when" => ("Waktu", "When"),
        "who" => ("Oleh", "By"),
        "summary" => ("Ringkasan", "Summary"),
        "no_policy" => ("Tidak ada perubahan kebijakan.", "No policy changes."),
        "default_policy" => ("bawaan", "default"),
        "agencies" => ("Per instansi", "By agency"),
        "page" => ("Halaman", "Page"),
        "more" => ("lainnya", "more"),
        "in_short" => ("Masuk", "In"),
        "out_short" => ("Keluar", "Out"),
        "alloc_short" => ("Alokasi", "Allocation"),
        "name" => ("Nama", "Name"),
        _ => return "?",
    };
    match lang {
        Lang::Id => id,
        Lang::En => en,
    }
}

/// `1234567` → `1.234.567` (id) or `1,234,567` (en).
pub fn int(lang: Lang, v: u64) -> String {
    let sep = match lang {
        Lang::Id => '.',
        Lang::En => ',',
    };
    let digits = v.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(sep);
        }
        out.push(c);
    }
    out
}

/// `v` with two decimals in the language's style (`12,34` / `12.34`).
pub fn dec2(lang: Lang, v: f64) -> String {
    let v = if v.is_finite() { v } else { 0.0 };
    let s = format!("{v:.2}");
    let (whole, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let neg = whole.starts_with('-');
    let w: u64 = whole.trim_start_matches('-').parse().unwrap_or(0);
    let point = match lang {
        Lang::Id => ',',
        Lang::En => '.',
    };
    format!(
        "{}{}{point}{frac}",
        if neg { "-" } else { "" },
        int(lang, w)
    )
}

/// Bytes in decimal units: `1,23 GB`.
pub fn bytes(lang: Lang, v: u64) -> String {
    const UNITS: [&str; 5] = ["KB", "MB", "GB", "TB", "PB"];
    if v < 1000 {
        return format!("{v} B");
    }
    let mut x = v as f64 / 1000.0;
    let mut u = 0;
    while x >= 1000.0 && u + 1 < UNITS.len() {
        x /= 1000.0;
        u += 1;
    }
    format!("{} {}", dec2(lang, x), UNITS[u])
}

/// A rate in Mbit/s with two decimals: `12,34 Mbit/s`.
pub fn rate(lang: Lang, bps: f64) -> String {
    format!("{} Mbit/s", dec2(lang, bps / 1e6))
}

/// A percentage floored to two decimals (99,999 is not 100,00).
pub fn pct(lang: Lang, v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{} %", dec2(lang, (v * 100.0).floor() / 100.0)),
        None => "-".into(),
    }
}

/// A duration in the dashboard's one style: `45 dtk`, `3 mnt 20 dtk`,
/// `2 jam 5 mnt`, `1 hari 3 jam` (`45 s`, `3 min 20 s`, `2 h 5 min`, `1 d 3 h`).
pub fn duration(lang: Lang, secs: Option<f64>) -> String {
    let Some(s) = secs else {
        return "-".into();
    };
    let s = s.max(0.0).round() as u64;
    let (sec, min, hour, day) = match lang {
        Lang::Id => ("dtk", "mnt", "jam", "hari"),
        Lang::En => ("s", "min", "h", "d"),
    };
    if s < 60 {
        format!("{s} {sec}")
    } else if s < 3600 {
        format!("{} {min} {} {sec}", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{} {hour} {} {min}", s / 3600, s % 3600 / 60)
    } else {
        format!("{} {day} {} {hour}", s / 86_400, s % 86_400 / 3600)
    }
}

/// Unix milliseconds as local `YYYY-MM-DD HH:MM`.
pub fn local_time(ms: u64, offset_secs: i32) -> String {
    let t = i64::try_from(ms / 1000).unwrap_or(0) + i64::from(offset_secs);
    let d =
        time::OffsetDateTime::from_unix_timestamp(t).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute()
    )
}

/// The month's name: `November 2026`.
pub fn month_name(lang: Lang, year: i32, month: u8) -> String {
    const ID: [&str; 12] = [
        "Januari",
        "Februari",
        "Maret",
        "April",
        "Mei",
        "Juni",
        "Juli",
        "Agustus",
        "September",
        "Oktober",
        "November",
        "Desember",
    ];
    const EN: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    let names = match lang {
        Lang::Id => ID,
        Lang::En => EN,
    };
    let i = usize::from(month.clamp(1, 12)) - 1;
    format!("{} {year}", names[i])
}

/// The severities' words.
pub fn severity(lang: Lang, s: &str) -> String {
    let w = match (lang, s) {
        (Lang::Id, "critical") => "kritis",
        (Lang::Id, "major") => "mayor",
        (Lang::Id, "minor") => "minor",
        (Lang::Id, "info") => "info",
        _ => s,
    };
    w.to_string()
}
