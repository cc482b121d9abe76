/* accounts: the configuration's pools as the JSON relance_sync_accounts
 * takes (serve syncs at start, `relance accounts sync` by hand), and
 * lookups of configured accounts. The command is cmd/accounts.c. */
#include "accounts.h"

#include "api.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void json_str(FILE *f, const char *key, const char *value, int comma)
{
    char buf[1024];
    api_json_string(value ? value : "", buf, sizeof buf);
    fprintf(f, "%s\"%s\":%s", comma ? "," : "", key, value ? buf : "null");
}

char *accounts_config_json(const struct config *cfg)
{
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f)
        return NULL;
    fputs("{\"pools\":[", f);
    for (size_t i = 0; i < cfg->n_pools; i++) {
        const struct config_pool *p = &cfg->pools[i];
        fputs(i ? ",{" : "{", f);
        json_str(f, "name", p->name, 0);
        fprintf(f, ",\"domain_hourly_limit\":%ld,\"accounts\":[", p->domain_hourly_limit);
        for (size_t j = 0; j < p->n_accounts; j++) {
            const struct config_account *a = &p->accounts[j];
            fputs(j ? ",{" : "{", f);
            json_str(f, "email", a->email, 0);
            json_str(f, "from_name", a->from_name, 1);
            json_str(f, "timezone", a->timezone ? a->timezone : "UTC", 1);
            fprintf(f,
                    ",\"daily_limit\":%ld,\"min_interval_s\":%ld,\"interval_jitter_s\":%ld,"
                    "\"warmup_start\":%ld,\"warmup_increase\":%ld,\"max_policy_blocks\":%ld",
                    a->daily_limit, a->min_interval, a->interval_jitter, a->warmup_start,
                    a->warmup_increase_per_day, a->max_policy_blocks > 0 ? a->max_policy_blocks : 3);
            if (a->max_bounce_rate)
                fprintf(f, ",\"max_bounce_rate\":%.6f", config_rate_parse(a->max_bounce_rate));
            fputs("}", f);
        }
        fputs("]}", f);
    }
    fputs("]}", f);
    if (fclose(f) != 0) {
        free(out);
        return NULL;
    }
    return out;
}

const struct config_account *accounts_find(const struct config *cfg, const char *email)
{
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t j = 0; j < cfg->pools[i].n_accounts; j++)
            if (strcasecmp(cfg->pools[i].accounts[j].email, email) == 0)
                return &cfg->pools[i].accounts[j];
    return NULL;
}
