-- Generic system messages with ids 1 to n; one in twenty has no updated_at.
INSERT INTO public.system_messages (id, created_at, updated_at, severity, code, body, context)
SELECT
    i,
    pg_temp.seed_created_tied(c, u1, :tie, :tie_share),
    CASE WHEN u10 < 0.05 THEN NULL ELSE pg_temp.seed_updated(c, u1, u2, :t1, :tie, :tie_share) END,
    CASE WHEN u11 < 0.002 THEN pg_temp.seed_pick(ARRAY['debug', 'fatal', 'notice', 'critical'], u4)
         WHEN u4 < 0.70 THEN severity
         WHEN u4 < 0.85 THEN upper(severity)
         WHEN u4 < 0.95 THEN initcap(severity)
         ELSE pg_temp.seed_pad(severity, u4) END,
    pg_temp.seed_messy(pg_temp.seed_pick(ARRAY['ORDER_SYNC', 'LOGIN_FAILED', 'PAYMENT_DECLINED', 'SCAN_UPLOADED',
                                              'EXPORT_DONE', 'E1042', 'w-17'], u5), u12, 0.03, 0),
    pg_temp.seed_messy(pg_temp.seed_pick(ARRAY['Order synced to lab', 'Login failed for user', 'Payment declined — retry',
                                              'Scan uploaded ✔', 'Export terminé', '注文が同期されました',
                                              'Aligner batch 🦷 shipped'], u7) || ' (#' || i || ')', u6, 0.03, 0.0005),
    CASE WHEN u8 < 0.20 THEN NULL
         WHEN u8 < 0.25 THEN 'null'::jsonb
         WHEN u8 < 0.60 THEN jsonb_build_object('order_id', 1 + floor(u9 * 1000000)::int, 'user', 'svc-sync')
         WHEN u8 < 0.62 THEN jsonb_build_object()
         ELSE jsonb_build_object('attempt', 1 + floor(u9 * 5)::int, 'ip', '10.0.' || floor(u9 * 256)::int || '.7',
                                 'tags', jsonb_build_array('sync', 'lab')) END
FROM (
    SELECT i,
           pg_temp.seed_u(b, 3) AS u1, pg_temp.seed_u(b, 6) AS u2, pg_temp.seed_u(b, 12) AS u4,
           pg_temp.seed_u(b, 15) AS u5, pg_temp.seed_u(b, 18) AS u6, pg_temp.seed_u(b, 21) AS u7,
           pg_temp.seed_u(b, 24) AS u8, pg_temp.seed_u(b, 27) AS u9, pg_temp.seed_u(b, 30) AS u10,
           pg_temp.seed_u(b, 33) AS u11, pg_temp.seed_u(b, 36) AS u12,
           pg_temp.seed_created(pg_temp.seed_u(b, 0), :t0, :t1) AS c,
           pg_temp.seed_pick(ARRAY['info', 'warn', 'error'], pg_temp.seed_u(b, 9)) AS severity
    FROM (SELECT g AS i, pg_temp.seed_block(:seed, 'system_messages', g) AS b
          FROM generate_series(1, :n) AS g OFFSET 0) AS blocks
    OFFSET 0
) AS r;
