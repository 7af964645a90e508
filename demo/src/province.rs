//! DEMO DATA: the province-sized demo (`--province`): the four demo
//! agencies plus more of a province's Perangkat Daerah, up to
//! [`crate::rewrite::MAX_AGENCIES`], and how many agents each gets.

/// An agency of the demo: code, name, allocated download and upload (bps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyDef {
    pub code: String,
    pub name: String,
    pub down_bps: u64,
    pub up_bps: u64,
}

/// DEMO DATA: more agencies of a province, after the demo's first four.
const MORE: &[(&str, &str)] = &[
    ("bkd", "Badan Kepegawaian Daerah"),
    ("bpkad", "Badan Pengelolaan Keuangan dan Aset Daerah"),
    ("bapenda", "Badan Pendapatan Daerah"),
    ("bpbd", "Badan Penanggulangan Bencana Daerah"),
    ("bakesbangpol", "Badan Kesatuan Bangsa dan Politik"),
    ("balitbangda", "Badan Penelitian dan Pengembangan Daerah"),
    ("bpsdm", "Badan Pengembangan Sumber Daya Manusia"),
    ("inspektorat", "Inspektorat Daerah"),
    ("setda", "Sekretariat Daerah"),
    ("setwan", "Sekretariat DPRD"),
    ("dishub", "Dinas Perhubungan"),
    ("dpupr", "Dinas Pekerjaan Umum dan Penataan Ruang"),
    ("dinsos", "Dinas Sosial"),
    ("disnaker", "Dinas Tenaga Kerja dan Transmigrasi"),
    ("dlh", "Dinas Lingkungan Hidup"),
    ("disdukcapil", "Dinas Kependudukan dan Pencatatan Sipil"),
    ("dpmd", "Dinas Pemberdayaan Masyarakat dan Desa"),
    ("dp3a", "Dinas Pemberdayaan Perempuan dan Perlindungan Anak"),
    ("disperindag", "Dinas Perindustrian dan Perdagangan"),
    ("diskop", "Dinas Koperasi dan UKM"),
    ("dpmptsp", "Dinas Penanaman Modal dan PTSP"),
    ("dispora", "Dinas Pemuda dan Olahraga"),
    ("disbudpar", "Dinas Kebudayaan dan Pariwisata"),
    ("disarpus", "Dinas Perpustakaan dan Kearsipan"),
    ("distan", "Dinas Tanaman Pangan dan Hortikultura"),
    ("disbun", "Dinas Perkebunan"),
    ("disnak", "Dinas Peternakan dan Kesehatan Hewan"),
    ("dkp", "Dinas Kelautan dan Perikanan"),
    ("dishut", "Dinas Kehutanan"),
    ("desdm", "Dinas Energi dan Sumber Daya Mineral"),
    ("dpkp", "Dinas Perumahan dan Kawasan Permukiman"),
    ("dkpp", "Dinas Ketahanan Pangan"),
    ("satpolpp", "Satuan Polisi Pamong Praja"),
    ("rsud-ulin", "RSUD Ulin"),
    ("rsud-ansari", "RSUD Ansari Saleh"),
    ("rsj-sambang", "RSJ Sambang Lihum"),
    ("samsat-bjm", "UPTD Samsat Banjarmasin"),
    ("samsat-bjb", "UPTD Samsat Banjarbaru"),
    ("samsat-mtp", "UPTD Samsat Martapura"),
    ("labkesda", "UPTD Laboratorium Kesehatan Daerah"),
    ("bpsmb", "UPTD Balai Pengujian dan Sertifikasi Mutu Barang"),
    ("bpbj", "Biro Pengadaan Barang dan Jasa"),
    ("biro-hukum", "Biro Hukum"),
    ("biro-umum", "Biro Umum"),
    ("biro-ekbang", "Biro Perekonomian dan Pembangunan"),
    ("biro-kesra", "Biro Kesejahteraan Rakyat"),
    ("biro-organisasi", "Biro Organisasi"),
    ("biro-pemotda", "Biro Pemerintahan dan Otonomi Daerah"),
    ("biro-adpim", "Biro Administrasi Pimpinan"),
    ("korpri", "Sekretariat KORPRI"),
    ("kesbang-wil1", "Bakorwil I"),
    ("kesbang-wil2", "Bakorwil II"),
    ("uptd-bmkg", "UPTD Pengelolaan Data Cuaca"),
    ("uptd-ppa", "UPTD Perlindungan Perempuan dan Anak"),
    ("uptd-tahura", "UPTD Taman Hutan Raya"),
    ("uptd-pelabuhan", "UPTD Pelabuhan Daerah"),
];

/// Allocated download rates cycle through these (upload: half).
const RATES: [u64; 4] = [2_000_000, 3_000_000, 4_000_000, 5_000_000];

/// The first `n` agencies: `first` (the demo's own), then [`MORE`].
pub fn agencies(first: &[(&str, &str, u64, u64)], n: usize) -> Vec<AgencyDef> {
    let mut out: Vec<AgencyDef> = first
        .iter()
        .take(n)
        .map(|(code, name, down, up)| AgencyDef {
            code: (*code).to_string(),
            name: (*name).to_string(),
            down_bps: *down,
            up_bps: *up,
        })
        .collect();
    for (k, (code, name)) in MORE.iter().enumerate().take(n.saturating_sub(out.len())) {
        let down = RATES[k % RATES.len()];
        out.push(AgencyDef {
            code: (*code).to_string(),
            name: (*name).to_string(),
            down_bps: down,
            up_bps: down / 2,
        });
    }
    out
}

/// Most agencies the demo can name.
pub fn max_named(first: usize) -> usize {
    first + MORE.len()
}

/// The agents beyond the demo's usual ones (one per agency and the two
/// behind the rural link): `(agency index, node id)`, spread over the
/// added agencies (over the first ones when there are none), numbered on
/// from the ids the demo uses already.
pub fn extra_nodes(agencies: &[AgencyDef], first: usize, extra: usize) -> Vec<(usize, String)> {
    let pool: Vec<usize> = if agencies.len() > first {
        (first..agencies.len()).collect()
    } else {
        (0..agencies.len()).collect()
    };
    if pool.is_empty() {
        return Vec::new();
    }
    (0..extra)
        .map(|j| {
            let a = pool[j % pool.len()];
            let round = j / pool.len();
            // The first agencies have -01 (and bappeda-02, switched off).
            let number = if a < first { 3 + round } else { 1 + round };
            (a, format!("{}-{number:02}", agencies[a].code))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sixty_agencies_with_unique_codes_and_two_agents_each() {
        let first = [
            ("a", "A", 1, 1),
            ("b", "B", 1, 1),
            ("c", "C", 1, 1),
            ("d", "D", 1, 1),
        ];
        assert!(max_named(4) >= crate::rewrite::MAX_AGENCIES);
        let ags = agencies(&first, 60);
        assert_eq!(ags.len(), 60);
        let codes: std::collections::HashSet<_> = ags.iter().map(|a| &a.code).collect();
        assert_eq!(codes.len(), 60);
        let extra = extra_nodes(&ags, 4, 114);
        let ids: std::collections::HashSet<_> = extra.iter().map(|e| &e.1).collect();
        assert_eq!(ids.len(), 114);
        assert!(extra.iter().all(|(a, _)| *a >= 4));
        assert_eq!(extra[0].1, "bkd-01");
        assert_eq!(extra[56].1, "bkd-02");
        let few = extra_nodes(&agencies(&first, 4), 4, 2);
        assert_eq!(few[0].1, "a-03");
    }
}
