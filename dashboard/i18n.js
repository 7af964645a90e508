// Strings and number/time formatting. Bahasa Indonesia first, English second.
// The choice is kept in localStorage under "simpul.lang".

const STRINGS = {
  id: {
    'app.subtitle': 'Pusat Operasi Jaringan Intra',
    'lang.switch': 'EN',
    'lang.switch.label': 'Switch to English',
    'conn.connecting': 'Menghubungkan…',
    'conn.live': 'Langsung',
    'conn.polling': 'Polling',
    'conn.down': 'Terputus',
    'conn.stale': 'Tertunda',
    'banner.down': 'Terputus dari kolektor. Mencoba lagi dalam {s} dtk… Angka di layar adalah data terakhir pukul {t}.',
    'banner.downNever': 'Terputus dari kolektor. Mencoba lagi dalam {s} dtk…',
    'banner.polling': 'Siaran langsung terputus — data diperbarui lewat polling tiap {s} dtk.',
    'banner.stale': 'Data tertunda: tidak ada pembaruan sejak {t}.',
    'updated': 'Data {t}',
    'nav.overview': 'Ringkasan',
    'nav.back': '← Ringkasan',
    'kpi.nodes': 'Node aktif',
    'kpi.nodes.detail': '{down} putus · {never} belum terhubung · {revoked} dicabut',
    'kpi.uplinkIn': 'Uplink internet unduh',
    'kpi.uplinkOut': 'Uplink internet unggah',
    'kpi.of': 'dari {cap}',
    'kpi.over': 'Instansi ≥ 95% alokasi',
    'kpi.over.none': 'Semua di bawah 95%',
    'panel.agencies': 'Trafik instansi saat ini',
    'panel.agencies.note': 'rata-rata {n} dtk terakhir terhadap alokasi',
    'panel.nodes': 'Status node',
    'panel.topAgencies': 'Instansi teratas · 15 mnt',
    'panel.topSites': 'Situs teratas · 15 mnt',
    'dir.in': 'Unduh',
    'dir.out': 'Unggah',
    'alloc': 'alokasi',
    'alloc.none': 'tanpa alokasi',
    'nodes.count': '{up}/{total} node',
    'status.up': 'Aktif',
    'status.down': 'Putus',
    'status.never': 'Belum terhubung',
    'status.revoked': 'Dicabut',
    'seen.never': 'belum pernah',
    'rel.now': 'baru saja',
    'rel.s': '{n} dtk lalu',
    'rel.m': '{n} mnt lalu',
    'rel.h': '{n} jam lalu',
    'rel.d': '{n} hari lalu',
    'empty': 'Belum ada data',
    'loading': 'Memuat…',
    'error': 'Gagal memuat: {e}',
    'flows.n': '{n} flow',
    'agency.notfound': 'Instansi “{code}” tidak dikenal.',
    'agency.live': 'Trafik langsung · 15 menit terakhir, per detik',
    'agency.history': 'Riwayat trafik',
    'agency.range.24h': '24 jam',
    'agency.range.7d': '7 hari',
    'agency.total': 'Total: unduh {in} · unggah {out}',
    'agency.step': 'per {step}',
    'agency.internet': 'Internet',
    'agency.intranet': 'Intranet',
    'agency.nodes': 'Node instansi',
    'agency.topHosts': 'Host teratas · 15 mnt',
    'agency.topSites': 'Situs teratas · 15 mnt',
    'agency.flows': 'Flow terbaru',
    'agency.allocLine': 'Alokasi',
    'chart.time': 'Waktu',
    'col.host': 'Host',
    'col.unit': 'Unit',
    'col.down': 'Unduh',
    'col.up': 'Unggah',
    'col.flows': 'Flow',
    'col.site': 'Situs',
    'col.source': 'Sumber nama',
    'col.bytes': 'Volume',
    'col.time': 'Terakhir',
    'col.src': 'Pemrakarsa',
    'col.dst': 'Tujuan',
    'col.proto': 'Proto',
    'col.scope': 'Cakupan',
    'col.bytesUp': 'Byte ↑',
    'col.bytesDown': 'Byte ↓',
    'col.node': 'Node',
    'col.status': 'Status',
    'col.lastSeen': 'Terakhir terlihat',
    'col.address': 'Alamat',
    'col.version': 'Versi agen',
    'col.uptime': 'Lama aktif',
    'col.cpu': 'CPU',
    'col.drops': 'Paket hilang',
    'scope.internet': 'internet',
    'scope.intranet': 'intranet',
    'site.unknown': '(tanpa nama)',
    'unit.unknown': '(tak dikenal)',
    'kind.interim': 'berjalan',
    'panel.blocked': 'Upaya akses diblokir · 15 mnt',
    'blocked.title': 'Upaya akses diblokir',
    'blocked.details': 'Rincian →',
    'blocked.topTargets': 'Target teratas · 15 mnt',
    'blocked.topClients': 'Klien teratas · 15 mnt',
    'blocked.recent': 'Upaya terbaru',
    'blocked.total': '{n} upaya dalam 15 mnt',
    'blocked.none': 'Tidak ada upaya diblokir',
    'blocked.perAgency': '{name}: {n} upaya',
    'blocked.count': '{n} upaya',
    'col.agencyUnit': 'Instansi / unit',
    'col.client': 'Klien',
    'col.target': 'Target',
    'col.method': 'Metode',
    'col.rule': 'Aturan · daftar',
    'col.attempts': 'Upaya',
    'col.clients': 'Klien',
    'col.targets': 'Target',
    'method.dns': 'DNS',
    'method.sni': 'SNI',
    'method.quic': 'QUIC SNI',
    'method.http': 'HTTP Host',
    'method.address': 'Alamat',
    'method.port': 'Port',
    'method.dot': 'DoT',
    'method.doh': 'DoH',
    'status.unreachable': 'Tak terjangkau',
    'status.flapping': 'Tidak stabil',
    'status.unknown': 'Belum terdengar',
    'kpi.nodes.down': '{n} putus',
    'kpi.nodes.unreachable': '{n} tak terjangkau',
    'kpi.nodes.flapping': '{n} tidak stabil',
    'kpi.nodes.never': '{n} belum terhubung',
    'kpi.nodes.unknown': '{n} belum terdengar',
    'kpi.nodes.revoked': '{n} dicabut',
    'panel.alerts': 'Gangguan aktif',
    'alerts.none': 'Tidak ada gangguan',
    'alerts.count': '{n} terbuka · {u} belum diterima',
    'alerts.more': '+{n} lainnya',
    'alerts.link': 'Insiden →',
    'kind.down': 'PADAM',
    'kind.group_down': 'PADAM',
    'kind.unreachable': 'TIDAK TERJANGKAU',
    'kind.flapping': 'TIDAK STABIL',
    'sev.critical': 'Kritis',
    'sev.major': 'Mayor',
    'sev.minor': 'Minor',
    'sev.info': 'Info',
    'inc.under': 'Tak terjangkau karena ini:',
    'inc.because': 'karena {root} padam',
    'inc.ongoing': 'berlangsung',
    'inc.count': '{n} insiden',
    'inc.maintenance': 'pemeliharaan',
    'inc.startedAgo': 'sejak {t}',
    'ack.button': 'Terima',
    'ack.button.label': 'Terima insiden {node}',
    'ack.by': 'Diterima {by} · {t}',
    'ack.error': 'Gagal menerima: {e}',
    'ack.dialog.title': 'Siapa yang menangani?',
    'ack.dialog.label': 'Nama petugas',
    'ack.dialog.note': 'Nama disimpan di peramban ini untuk penerimaan berikutnya.',
    'ack.dialog.ok': 'Simpan',
    'ack.dialog.cancel': 'Batal',
    'operator': 'Petugas: {name}',
    'operator.none': 'Petugas belum diisi',
    'operator.change': 'ganti',
    'nav.incidents': 'Insiden',
    'nav.availability': 'Ketersediaan & pemeliharaan',
    'inc.title': 'Insiden node',
    'inc.list': 'Daftar insiden',
    'inc.filter.open': 'Terbuka',
    'inc.filter.all': 'Semua · 7 hari',
    'inc.filter.agency': 'Instansi',
    'inc.filter.allAgencies': 'Semua instansi',
    'inc.timeline': 'Linimasa node',
    'inc.range.24h': '24 jam',
    'inc.range.7d': '7 hari',
    'inc.stats': 'Waktu tanggap per tingkat · 30 hari',
    'inc.stats.none': 'Belum ada insiden dalam 30 hari',
    'tl.down': 'Padam',
    'tl.unreachable': 'Tak terjangkau',
    'tl.flapping': 'Tidak stabil',
    'tl.maintenance': 'Pemeliharaan',
    'tl.up': 'Normal',
    'tl.none': 'Belum terdaftar',
    'col.severity': 'Tingkat',
    'col.kind': 'Jenis',
    'col.nodeAgency': 'Node / instansi',
    'col.started': 'Mulai',
    'col.duration': 'Durasi',
    'col.acked': 'Diterima',
    'col.resolved': 'Pulih',
    'col.incidents': 'Insiden',
    'col.ackedN': 'Diterima',
    'col.resolvedN': 'Pulih',
    'col.meanAck': 'Rata-rata tanggap',
    'col.maxAck': 'Tanggap terlama',
    'col.meanResolve': 'Rata-rata pulih',
    'col.maxResolve': 'Pulih terlama',
    'col.agency': 'Instansi',
    'col.availability': 'Ketersediaan',
    'col.downtime': 'Padam',
    'col.unreachable': 'Tak terjangkau',
    'col.maintenance': 'Pemeliharaan',
    'av.title': 'Ketersediaan node',
    'av.note': 'Padam di luar pemeliharaan mengurangi ketersediaan; waktu tak terjangkau dan pemeliharaan dihitung terpisah.',
    'av.today': 'Hari ini',
    'av.month': 'Bulan ini',
    'mt.title': 'Jadwal pemeliharaan',
    'mt.add': 'Tambah jadwal pemeliharaan',
    'mt.scope': 'Berlaku untuk',
    'mt.scope.node': 'Node',
    'mt.scope.agency': 'Instansi (semua node)',
    'mt.from': 'Mulai',
    'mt.to': 'Selesai',
    'mt.reason': 'Alasan',
    'mt.reason.ph': 'mis. penggantian router',
    'mt.by': 'Oleh',
    'mt.submit': 'Simpan jadwal',
    'mt.saved': 'Jadwal pemeliharaan tersimpan.',
    'mt.error': 'Gagal menyimpan: {e}',
    'mt.badRange': 'Waktu selesai harus setelah waktu mulai.',
    'mt.all': 'Semua node',
    'mt.agencyScope': '{name} (semua node)',
    'mt.state.active': 'berlangsung',
    'mt.state.planned': 'terjadwal',
    'mt.state.done': 'selesai',
    'col.scope': 'Berlaku untuk',
    'col.from': 'Mulai',
    'col.to': 'Selesai',
    'col.reason': 'Alasan',
    'col.by': 'Oleh',
    'col.state': 'Status',
    'span.s': '{s} dtk',
    'span.m': '{m} mnt {s} dtk',
    'span.h': '{h} jam {m} mnt',
    'span.d': '{d} hari {h} jam',
    'method.quic_protocol': 'QUIC',
  },
  en: {
    'app.subtitle': 'Intranet Network Operations Centre',
    'lang.switch': 'ID',
    'lang.switch.label': 'Ganti ke Bahasa Indonesia',
    'conn.connecting': 'Connecting…',
    'conn.live': 'Live',
    'conn.polling': 'Polling',
    'conn.down': 'Disconnected',
    'conn.stale': 'Delayed',
    'banner.down': 'Disconnected from the collector. Retrying in {s} s… Figures on screen are the last data, from {t}.',
    'banner.downNever': 'Disconnected from the collector. Retrying in {s} s…',
    'banner.polling': 'Live feed disconnected — data refreshed by polling every {s} s.',
    'banner.stale': 'Data delayed: no update since {t}.',
    'updated': 'Data {t}',
    'nav.overview': 'Overview',
    'nav.back': '← Overview',
    'kpi.nodes': 'Nodes up',
    'kpi.nodes.detail': '{down} down · {never} never connected · {revoked} revoked',
    'kpi.uplinkIn': 'Internet uplink down',
    'kpi.uplinkOut': 'Internet uplink up',
    'kpi.of': 'of {cap}',
    'kpi.over': 'Agencies ≥ 95% of allocation',
    'kpi.over.none': 'All below 95%',
    'panel.agencies': 'Agency traffic now',
    'panel.agencies.note': 'average of the last {n} s against the allocation',
    'panel.nodes': 'Node status',
    'panel.topAgencies': 'Top agencies · 15 min',
    'panel.topSites': 'Top sites · 15 min',
    'dir.in': 'Down',
    'dir.out': 'Up',
    'alloc': 'allocation',
    'alloc.none': 'no allocation',
    'nodes.count': '{up}/{total} nodes',
    'status.up': 'Up',
    'status.down': 'Down',
    'status.never': 'Never connected',
    'status.revoked': 'Revoked',
    'seen.never': 'never',
    'rel.now': 'just now',
    'rel.s': '{n} s ago',
    'rel.m': '{n} min ago',
    'rel.h': '{n} h ago',
    'rel.d': '{n} d ago',
    'empty': 'No data yet',
    'loading': 'Loading…',
    'error': 'Failed to load: {e}',
    'flows.n': '{n} flows',
    'agency.notfound': 'Unknown agency “{code}”.',
    'agency.live': 'Live traffic · last 15 minutes, per second',
    'agency.history': 'Traffic history',
    'agency.range.24h': '24 hours',
    'agency.range.7d': '7 days',
    'agency.total': 'Total: download {in} · upload {out}',
    'agency.step': 'per {step}',
    'agency.internet': 'Internet',
    'agency.intranet': 'Intranet',
    'agency.nodes': 'Agency nodes',
    'agency.topHosts': 'Top hosts · 15 min',
    'agency.topSites': 'Top sites · 15 min',
    'agency.flows': 'Recent flows',
    'agency.allocLine': 'Allocation',
    'chart.time': 'Time',
    'col.host': 'Host',
    'col.unit': 'Unit',
    'col.down': 'Download',
    'col.up': 'Upload',
    'col.flows': 'Flows',
    'col.site': 'Site',
    'col.source': 'Name source',
    'col.bytes': 'Volume',
    'col.time': 'Last seen',
    'col.src': 'Initiator',
    'col.dst': 'Destination',
    'col.proto': 'Proto',
    'col.scope': 'Scope',
    'col.bytesUp': 'Bytes ↑',
    'col.bytesDown': 'Bytes ↓',
    'col.node': 'Node',
    'col.status': 'Status',
    'col.lastSeen': 'Last seen',
    'col.address': 'Address',
    'col.version': 'Agent version',
    'col.uptime': 'Uptime',
    'col.cpu': 'CPU',
    'col.drops': 'Dropped packets',
    'scope.internet': 'internet',
    'scope.intranet': 'intranet',
    'site.unknown': '(unnamed)',
    'unit.unknown': '(unknown)',
    'kind.interim': 'running',
    'panel.blocked': 'Blocked attempts · 15 min',
    'blocked.title': 'Blocked attempts',
    'blocked.details': 'Details →',
    'blocked.topTargets': 'Top targets · 15 min',
    'blocked.topClients': 'Top clients · 15 min',
    'blocked.recent': 'Recent attempts',
    'blocked.total': '{n} attempts in 15 min',
    'blocked.none': 'No blocked attempts',
    'blocked.perAgency': '{name}: {n} attempts',
    'blocked.perAgency.one': '{name}: 1 attempt',
    'blocked.total.one': '1 attempt in 15 min',
    'blocked.count.one': '1 attempt',
    'blocked.count': '{n} attempts',
    'col.agencyUnit': 'Agency / unit',
    'col.client': 'Client',
    'col.target': 'Target',
    'col.method': 'Method',
    'col.rule': 'Rule · list',
    'col.attempts': 'Attempts',
    'col.clients': 'Clients',
    'col.targets': 'Targets',
    'method.dns': 'DNS',
    'method.sni': 'SNI',
    'method.quic': 'QUIC SNI',
    'method.http': 'HTTP Host',
    'method.address': 'Address',
    'method.port': 'Port',
    'method.dot': 'DoT',
    'method.doh': 'DoH',
    'status.unreachable': 'Unreachable',
    'status.flapping': 'Flapping',
    'status.unknown': 'Not heard yet',
    'kpi.nodes.down': '{n} down',
    'kpi.nodes.unreachable': '{n} unreachable',
    'kpi.nodes.flapping': '{n} flapping',
    'kpi.nodes.never': '{n} never connected',
    'kpi.nodes.unknown': '{n} not heard yet',
    'kpi.nodes.revoked': '{n} revoked',
    'panel.alerts': 'Active alarms',
    'alerts.none': 'No active alarms',
    'alerts.count': '{n} open · {u} unacknowledged',
    'alerts.more': '+{n} more',
    'alerts.link': 'Incidents →',
    'kind.down': 'DOWN',
    'kind.group_down': 'DOWN',
    'kind.unreachable': 'UNREACHABLE',
    'kind.flapping': 'FLAPPING',
    'sev.critical': 'Critical',
    'sev.major': 'Major',
    'sev.minor': 'Minor',
    'sev.info': 'Info',
    'inc.under': 'Unreachable because of it:',
    'inc.because': 'because {root} is down',
    'inc.ongoing': 'ongoing',
    'inc.count': '{n} incidents',
    'inc.count.one': '1 incident',
    'inc.maintenance': 'maintenance',
    'inc.startedAgo': 'since {t}',
    'ack.button': 'Acknowledge',
    'ack.button.label': 'Acknowledge the incident of {node}',
    'ack.by': 'Acknowledged by {by} · {t}',
    'ack.error': 'Could not acknowledge: {e}',
    'ack.dialog.title': 'Who is taking it?',
    'ack.dialog.label': 'Your name',
    'ack.dialog.note': 'Remembered in this browser for the next acknowledgements.',
    'ack.dialog.ok': 'Save',
    'ack.dialog.cancel': 'Cancel',
    'operator': 'Operator: {name}',
    'operator.none': 'No operator name yet',
    'operator.change': 'change',
    'nav.incidents': 'Incidents',
    'nav.availability': 'Availability & maintenance',
    'inc.title': 'Node incidents',
    'inc.list': 'Incidents',
    'inc.filter.open': 'Open',
    'inc.filter.all': 'All · 7 days',
    'inc.filter.agency': 'Agency',
    'inc.filter.allAgencies': 'All agencies',
    'inc.timeline': 'Node timeline',
    'inc.range.24h': '24 hours',
    'inc.range.7d': '7 days',
    'inc.stats': 'Response times by severity · 30 days',
    'inc.stats.none': 'No incidents in 30 days',
    'tl.down': 'Down',
    'tl.unreachable': 'Unreachable',
    'tl.flapping': 'Flapping',
    'tl.maintenance': 'Maintenance',
    'tl.up': 'Normal',
    'tl.none': 'Not enrolled yet',
    'col.severity': 'Severity',
    'col.kind': 'Kind',
    'col.nodeAgency': 'Node / agency',
    'col.started': 'Started',
    'col.duration': 'Duration',
    'col.acked': 'Acknowledged',
    'col.resolved': 'Resolved',
    'col.incidents': 'Incidents',
    'col.ackedN': 'Acknowledged',
    'col.resolvedN': 'Resolved',
    'col.meanAck': 'Mean time to acknowledge',
    'col.maxAck': 'Longest to acknowledge',
    'col.meanResolve': 'Mean time to resolve',
    'col.maxResolve': 'Longest to resolve',
    'col.agency': 'Agency',
    'col.availability': 'Availability',
    'col.downtime': 'Down',
    'col.unreachable': 'Unreachable',
    'col.maintenance': 'Maintenance',
    'av.title': 'Node availability',
    'av.note': 'Downtime outside maintenance lowers availability; unreachable and maintenance time are counted apart.',
    'av.today': 'Today',
    'av.month': 'This month',
    'mt.title': 'Maintenance windows',
    'mt.add': 'Add a maintenance window',
    'mt.scope': 'Applies to',
    'mt.scope.node': 'Node',
    'mt.scope.agency': 'Agency (all its nodes)',
    'mt.from': 'From',
    'mt.to': 'To',
    'mt.reason': 'Reason',
    'mt.reason.ph': 'e.g. router replacement',
    'mt.by': 'By',
    'mt.submit': 'Save window',
    'mt.saved': 'Maintenance window saved.',
    'mt.error': 'Could not save: {e}',
    'mt.badRange': 'The end must be after the start.',
    'mt.all': 'All nodes',
    'mt.agencyScope': '{name} (all nodes)',
    'mt.state.active': 'in progress',
    'mt.state.planned': 'planned',
    'mt.state.done': 'over',
    'col.scope': 'Applies to',
    'col.from': 'From',
    'col.to': 'To',
    'col.reason': 'Reason',
    'col.by': 'By',
    'col.state': 'State',
    'span.s': '{s} s',
    'span.m': '{m} min {s} s',
    'span.h': '{h} h {m} min',
    'span.d': '{d} d {h} h',
    'alerts.count.one': '1 open · {u} unacknowledged',
    'method.quic_protocol': 'QUIC',
  },
};

const LOCALES = { id: 'id-ID', en: 'en-US' };
const KEY = 'simpul.lang';

function initialLang() {
  try {
    const saved = localStorage.getItem(KEY);
    if (saved && STRINGS[saved]) return saved;
  } catch (_) { /* storage disabled */ }
  return 'id';
}

let current = initialLang();
const listeners = new Set();

export function lang() { return current; }
export function locale() { return LOCALES[current]; }

export function setLang(l) {
  if (!STRINGS[l] || l === current) return;
  current = l;
  try { localStorage.setItem(KEY, l); } catch (_) { /* storage disabled */ }
  document.documentElement.lang = l;
  cache.clear();
  for (const fn of listeners) fn(l);
}

export function onLangChange(fn) { listeners.add(fn); }

/** Translate a key, filling {name} placeholders from params. */
export function t(key, params) {
  let s = STRINGS[current][key] ?? STRINGS.id[key] ?? key;
  if (params) s = s.replace(/\{(\w+)\}/g, (m, k) => (k in params ? String(params[k]) : m));
  return s;
}

/** t() with a count: English has "{key}.one" for 1 (Indonesian needs no plural). */
export function tn(key, n, params) {
  const one = `${key}.one`;
  return t(n === 1 && STRINGS[current][one] ? one : key, params);
}

// ---- numbers ---------------------------------------------------------------

const cache = new Map();
function nf(min, max) {
  const k = `${current}:${min}:${max}`;
  let f = cache.get(k);
  if (!f) {
    f = new Intl.NumberFormat(locale(), { minimumFractionDigits: min, maximumFractionDigits: max });
    cache.set(k, f);
  }
  return f;
}

/** Three significant figures, fixed decimals so digits do not jump on a wall. */
function scaled(v, units, base) {
  if (v == null || !Number.isFinite(Number(v))) return ['—', ''];
  v = Number(v);
  let i = 0;
  const sign = v < 0 ? -1 : 1;
  v = Math.abs(v);
  while (v >= base * 0.9995 && i < units.length - 1) { v /= base; i++; }
  if (i === 0) return [nf(0, 0).format(sign * Math.round(v)), units[0]];
  const d = v < 10 ? 2 : v < 100 ? 1 : 0;
  return [nf(d, d).format(sign * v), units[i]];
}

const BPS = ['bps', 'Kbps', 'Mbps', 'Gbps', 'Tbps'];
const BYTES = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];

/** [number, unit] for a rate in bits per second (decimal units). */
export function bpsParts(v) { return scaled(v, BPS, 1000); }
export function fmtBps(v) { const [n, u] = bpsParts(v); return u ? `${n} ${u}` : n; }
/** Short axis label: no decimals beyond what is needed. */
export function fmtBpsAxis(v) {
  if (v === 0) return '0';
  let i = 0; let x = Math.abs(v);
  while (x >= 1000 && i < BPS.length - 1) { x /= 1000; i++; }
  return `${nf(0, 2).format(Math.sign(v) * x)} ${BPS[i]}`;
}
/** Allocations and capacities: "50 Mbps", "1 Gbps", "2,5 Gbps". */
export function fmtCap(v) {
  if (v == null || !Number.isFinite(Number(v))) return '—';
  return fmtBpsAxis(Number(v));
}
export function bytesParts(v) { return scaled(v, BYTES, 1000); }
export function fmtBytes(v) { const [n, u] = bytesParts(v); return u ? `${n} ${u}` : n; }
export function fmtInt(v) { return v == null ? '—' : nf(0, 0).format(v); }
export function fmtNum(v, d = 1) { return v == null ? '—' : nf(d, d).format(v); }

/** Percent from a ratio (0.5 → "50,0%"). */
export function fmtPct(ratio) {
  if (ratio == null || !Number.isFinite(ratio)) return '—';
  const p = ratio * 100;
  return `${nf(p >= 100 ? 0 : 1, p >= 100 ? 0 : 1).format(p)}%`;
}

// ---- times (always the browser's local zone) -----------------------------

const ID_ZONES = {
  'Asia/Jakarta': 'WIB', 'Asia/Pontianak': 'WIB',
  'Asia/Makassar': 'WITA', 'Asia/Ujung_Pandang': 'WITA',
  'Asia/Jayapura': 'WIT',
};

let zoneCache = null;
/** WIB/WITA/WIT for Indonesian zones, otherwise the browser's short name. */
export function zoneLabel() {
  const k = current;
  if (zoneCache && zoneCache[0] === k) return zoneCache[1];
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone;
  let label = ID_ZONES[tz];
  if (!label) {
    const part = new Intl.DateTimeFormat(locale(), { timeZoneName: 'short' })
      .formatToParts(new Date()).find((p) => p.type === 'timeZoneName');
    label = part ? part.value : '';
  }
  zoneCache = [k, label];
  return label;
}

function dtf(opts) {
  const k = `${current}:dtf:${JSON.stringify(opts)}`;
  let f = cache.get(k);
  if (!f) { f = new Intl.DateTimeFormat(locale(), opts); cache.set(k, f); }
  return f;
}

const HMS = { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
const HM = { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };

export function fmtTime(d) { return d == null ? '—' : dtf(HMS).format(new Date(d)); }
export function fmtTimeHM(d) { return dtf(HM).format(new Date(d)); }
export function fmtDay(d) { return dtf({ day: 'numeric', month: 'short' }).format(new Date(d)); }
export function fmtDate(d) {
  return dtf({ weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(new Date(d));
}
export function fmtDateTime(d) {
  if (d == null) return '—';
  return dtf({ day: 'numeric', month: 'short', ...HMS }).format(new Date(d));
}

/** "3 dtk lalu" / "3 s ago" from a millisecond age. */
export function fmtAgo(ms) {
  if (ms == null || !Number.isFinite(ms)) return t('seen.never');
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 1) return t('rel.now');
  if (s < 60) return t('rel.s', { n: s });
  if (s < 3600) return t('rel.m', { n: Math.floor(s / 60) });
  if (s < 86400) return t('rel.h', { n: Math.floor(s / 3600) });
  return t('rel.d', { n: Math.floor(s / 86400) });
}

/** A duration in milliseconds: "45 dtk", "3 mnt 20 dtk", "2 jam 5 mnt", "1 hari 3 jam". */
export function fmtSpan(ms) {
  if (ms == null || !Number.isFinite(ms)) return '—';
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return t('span.s', { s });
  if (s < 3600) return t('span.m', { m: Math.floor(s / 60), s: s % 60 });
  if (s < 86400) return t('span.h', { h: Math.floor(s / 3600), m: Math.floor((s % 3600) / 60) });
  return t('span.d', { d: Math.floor(s / 86400), h: Math.floor((s % 86400) / 3600) });
}

/** Duration for "up since": 3 j 20 m / 3 h 20 m. */
export function fmtDuration(secs) {
  if (secs == null) return '—';
  const d = Math.floor(secs / 86400), h = Math.floor((secs % 86400) / 3600), m = Math.floor((secs % 3600) / 60);
  const u = current === 'id' ? ['hr', 'j', 'm'] : ['d', 'h', 'm'];
  if (d) return `${d} ${u[0]} ${h} ${u[1]}`;
  if (h) return `${h} ${u[1]} ${m} ${u[2]}`;
  return `${m} ${u[2]}`;
}

document.documentElement.lang = current;
