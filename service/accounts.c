/* accounts: the configuration's pools as the JSON relance_sync_accounts
 * takes (serve syncs at start, `relance accounts sync` by hand), and
 * lookups of configured accounts. The command is cmd/accounts.c. */
#include "accounts.h"

#include "buf.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ,"key":"value" (null when value is NULL), without the comma for the
 * first member. */
static void member(struct buf *b, const char *key, const char *value, int comma)
{
    buf_addf(b, "%s\"%s\":", comma ? "," : "", key);
    json_add_string(b, value);
}

char *accounts_config_json(const struct config *cfg, const char *now)
{
    struct buf b = {0};
    buf_adds(&b, "{");
    if (now) {
        member(&b, "now", now, 0);
        buf_adds(&b, ",\"secrets_checked\":true,");
    }
    buf_adds(&b, "\"pools\":[");
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const struct config_pool *p = &cfg->pools[i];
        buf_adds(&b, i ? ",{" : "{");
        member(&b, "name", p->name, 0);
        buf_addf(&b, ",\"domain_hourly_limit\":%ld,\"accounts\":[", p->domain_hourly_limit);
        for (size_t j = 0; j < p->n_accounts; j++) {
            const struct config_account *a = &p->accounts[j];
            buf_adds(&b, j ? ",{" : "{");
            member(&b, "email", a->email, 0);
            member(&b, "from_name", a->from_name, 1);
            member(&b, "timezone", a->timezone ? a->timezone : "UTC", 1);
            buf_addf(&b,
                     ",\"daily_limit\":%ld,\"min_interval_s\":%ld,\"interval_jitter_s\":%ld,"
                     "\"warmup_start\":%ld,\"warmup_increase\":%ld,\"max_policy_blocks\":%ld",
                     a->daily_limit, a->min_interval, a->interval_jitter, a->warmup_start,
                     a->warmup_increase_per_day, a->max_policy_blocks > 0 ? a->max_policy_blocks : 3);
            if (now && a->unavailable)
                member(&b, "unavailable", a->unavailable, 1);
            if (a->max_bounce_rate)
                buf_addf(&b, ",\"max_bounce_rate\":%.6f", config_rate_parse(a->max_bounce_rate));
            buf_adds(&b, "}");
        }
        buf_adds(&b, "]}");
    }
    buf_adds(&b, "]}");
    if (b.oom) {
        buf_free(&b);
        return NULL;
    }
    return b.p;
}

const struct config_account *accounts_find(const struct config *cfg, const char *email)
{
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t j = 0; j < cfg->pools[i].n_accounts; j++)
            if (strcasecmp(cfg->pools[i].accounts[j].email, email) == 0)
                return &cfg->pools[i].accounts[j];
    return NULL;
}
