//! The Prometheus text exposition format (version 0.0.4), written by hand:
//! every family gets `# HELP` and `# TYPE` before its samples, label values
//! and help text are escaped as the format asks, and a family is written
//! once, in one piece, however many places add samples to it.

use std::fmt::Write as _;

/// A metric family's kind as the exposition names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Summary,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Summary => "summary",
        }
    }
}

/// One family: its name, kind and help text, declared once in the module
/// that fills it.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
}

/// The document being written: families in the order first started,
/// each with its samples from wherever they were added.
#[derive(Default)]
pub struct Exposition {
    families: Vec<(Family, String)>,
    tail: String,
}

impl Exposition {
    /// The samples of `f`; its HELP and TYPE lines are written once, at
    /// the top of its samples, however many places add to it.
    pub fn family(&mut self, f: &Family) -> Samples<'_> {
        let i = match self.families.iter().position(|(g, _)| g.name == f.name) {
            Some(i) => i,
            None => {
                self.families.push((*f, String::new()));
                self.families.len() - 1
            }
        };
        Samples {
            out: &mut self.families[i].1,
            name: f.name,
        }
    }

    /// Text produced elsewhere in the same format (the recorder's), after
    /// this document's families.
    pub fn append(&mut self, text: &str) {
        self.tail.push_str(text);
    }

    pub fn finish(self) -> String {
        let mut out = String::new();
        for (f, body) in &self.families {
            let _ = writeln!(out, "# HELP {} {}", f.name, escape_help(f.help));
            let _ = writeln!(out, "# TYPE {} {}", f.name, f.kind.name());
            out.push_str(body);
        }
        out.push_str(&self.tail);
        out
    }
}

/// The samples of the family just started.
pub struct Samples<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Samples<'_> {
    /// One sample with these labels (names are constants of this module;
    /// values are escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        self.out.push(' ');
        self.out.push_str(&number(value));
        self.out.push('\n');
        self
    }

    /// An integer sample (counters, bytes): written exactly.
    pub fn int(&mut self, labels: &[(&str, &str)], value: u64) -> &mut Self {
        self.out.push_str(self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }
}

/// Label values: backslash, double quote and line feed are escaped.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Help text: backslash and line feed are escaped (quotes are not).
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const F: Family = Family {
        name: "simpul_test_things",
        kind: Kind::Gauge,
        help: "Things\\stuff,\nsecond line",
    };

    const G: Family = Family {
        name: "simpul_test_other_total",
        kind: Kind::Counter,
        help: "Other.",
    };

    #[test]
    fn help_type_once_and_escaped_values() {
        let mut e = Exposition::default();
        e.family(&F)
            .sample(&[("name", "a\"b\\c\nd")], 1.5)
            .int(&[], 7);
        e.family(&G).int(&[], 1);
        e.family(&F).sample(&[("name", "x")], f64::NAN);
        let t = e.finish();
        assert_eq!(
            t,
            "# HELP simpul_test_things Things\\\\stuff,\\nsecond line\n\
             # TYPE simpul_test_things gauge\n\
             simpul_test_things{name=\"a\\\"b\\\\c\\nd\"} 1.5\n\
             simpul_test_things 7\n\
             simpul_test_things{name=\"x\"} NaN\n\
             # HELP simpul_test_other_total Other.\n\
             # TYPE simpul_test_other_total counter\n\
             simpul_test_other_total 1\n"
        );
    }

    #[test]
    fn numbers() {
        assert_eq!(number(3.0), "3");
        assert_eq!(number(-0.25), "-0.25");
        assert_eq!(number(f64::INFINITY), "+Inf");
        assert_eq!(number(1e20), "100000000000000000000");
    }
}
