// A failed API call as a reader should read it: a translated sentence for
// what happened (unknown agency or node, not allowed, too many requests,
// the collector failing, the collector away) with the server's own words
// kept after it as the detail.
import { t } from './i18n.js';
import { ApiError } from './api.js';

function sentence(e) {
  const s = e.message || '';
  if (e.status === 404 && /unknown agency/i.test(s)) return t('err.unknownAgency');
  if (e.status === 404 && /unknown node/i.test(s)) return t('err.unknownNode');
  if (e.status === 404) return t('err.notFound');
  if (e.status === 403) return t('err.forbidden');
  if (e.status === 429) return e.retryAfter ? t('err.throttledFor', { s: e.retryAfter }) : t('err.throttled');
  if (e.status >= 500) return t('err.server');
  if (e.status === 400 || e.status === 422) return t('err.invalid');
  return null;
}

/** "Instansi ini tidak dikenal. (unknown agency "nosuch")"; a network failure says the collector cannot be reached. */
export function errorText(e) {
  if (!(e instanceof ApiError)) {
    // fetch() rejects with a TypeError when nothing answered.
    return e instanceof TypeError ? t('err.network') : String(e?.message || e);
  }
  const said = sentence(e);
  if (!said) return e.message;
  return e.message && e.message !== `HTTP ${e.status}` ? `${said} (${e.message})` : said;
}

/** "Gagal memuat: …" with errorText. */
export function loadError(e) { return t('error', { e: errorText(e) }); }
