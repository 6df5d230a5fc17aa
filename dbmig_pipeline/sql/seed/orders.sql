-- Generic orders with ids 1 to n, each for an existing patient. order_no carries the id,
-- so no two generic orders share upper(trim(order_no)). currency keeps its default.
INSERT INTO public.orders (id, created_at, updated_at, patient_id, order_no, status, aligner_count, price,
                           details, submitted_at, shipped_at)
SELECT
    i,
    pg_temp.seed_created_tied(c, u1, :tie, :tie_share),
    pg_temp.seed_updated(c, u1, u2, :t1, :tie, :tie_share),
    1 + floor(u3 * :n_patients)::int,
    CASE WHEN u4 < 0.80 THEN 'ORD-' || lpad(i::text, 9, '0')
         WHEN u4 < 0.88 THEN 'ord-' || lpad(i::text, 9, '0')
         WHEN u4 < 0.93 THEN 'Ord-' || lpad(i::text, 9, '0')
         WHEN u4 < 0.97 THEN ' ORD-' || lpad(i::text, 9, '0') || ' '
         WHEN u4 < 0.99 THEN 'ord-' || lpad(i::text, 9, '0') || E'\t'
         ELSE E'\n' || 'ORD-' || lpad(i::text, 9, '0') END,
    status,
    CASE WHEN u6 < 0.050 THEN NULL
         WHEN u6 < 0.051 THEN -1 - floor(u7 * 5)::int
         ELSE 5 + floor(u7 * 56)::int END,
    CASE WHEN u8 < 0.001 THEN -round((1 + u9 * 500)::numeric, 2)
         WHEN u8 < 0.010 THEN 0
         ELSE round((300 + u9 * 5700)::numeric, 2) END,
    CASE WHEN u10 < 0.700 THEN jsonb_build_object('arches', pg_temp.seed_pick(ARRAY['upper', 'lower', 'both'], u11))
         WHEN u10 < 0.820 THEN jsonb_build_object()
         WHEN u10 < 0.850 THEN jsonb_build_object('arches', NULL::text)
         WHEN u10 < 0.860 THEN jsonb_build_object('arches', '')
         WHEN u10 < 0.865 THEN jsonb_build_object('arches', pg_temp.seed_pad('upper', u11))
         WHEN u10 < 0.866 THEN jsonb_build_object('arches', pg_temp.seed_pick(ARRAY['top', 'UPPER', 'bottom'], u11))
         ELSE jsonb_build_object() END
    || CASE WHEN u12 < 0.150 THEN jsonb_build_object('rush', true)
            WHEN u12 < 0.750 THEN jsonb_build_object('rush', false)
            WHEN u12 < 0.760 THEN jsonb_build_object('rush', 'true')
            WHEN u12 < 0.765 THEN jsonb_build_object('rush', NULL::text)
            WHEN u12 < 0.770 THEN jsonb_build_object('rush', 1)
            ELSE jsonb_build_object() END
    || CASE WHEN u13 < 0.50 THEN jsonb_build_object()
            WHEN u13 < 0.70 THEN jsonb_build_object('material', pg_temp.seed_pick(ARRAY['ClearX', 'FlexPro', 'Ultra 3'], u14))
            WHEN u13 < 0.80 THEN jsonb_build_object('notes', pg_temp.seed_pick(ARRAY['Bitte sorgfältig prüfen', '急ぎ', 'ok 👍', ' see chart '], u14))
            WHEN u13 < 0.90 THEN jsonb_build_object('refinement', 1 + floor(u14 * 4)::int, 'source', 'portal')
            ELSE jsonb_build_object('meta', jsonb_build_object('portal', 'v1', 'tags', jsonb_build_array('a', 'b')),
                                    'attachments', floor(u14 * 3)::int) END,
    CASE WHEN status = 'draft' OR u17 < 0.03 THEN NULL
         ELSE c + interval '1 hour' * (1 + u15 * 72) END,
    CASE WHEN status IN ('shipped', 'delivered') AND u17 > 0.05 THEN c + interval '3 days' + interval '30 days' * u16
         ELSE NULL END
FROM (
    SELECT i,
           pg_temp.seed_u(b, 3) AS u1, pg_temp.seed_u(b, 6) AS u2, pg_temp.seed_u(b, 9) AS u3,
           pg_temp.seed_u(b, 12) AS u4, pg_temp.seed_u(b, 18) AS u6, pg_temp.seed_u(b, 21) AS u7,
           pg_temp.seed_u(b, 24) AS u8, pg_temp.seed_u(b, 27) AS u9, pg_temp.seed_u(b, 30) AS u10,
           pg_temp.seed_u(b, 33) AS u11, pg_temp.seed_u(b, 36) AS u12, pg_temp.seed_u(b, 39) AS u13,
           pg_temp.seed_u(b, 42) AS u14, pg_temp.seed_u(b, 45) AS u15, pg_temp.seed_u(b, 48) AS u16,
           pg_temp.seed_u(b, 51) AS u17,
           pg_temp.seed_created(pg_temp.seed_u(b, 0), :t0, :t1) AS c,
           CASE WHEN pg_temp.seed_u(b, 15) < 0.100 THEN 'draft'
                WHEN pg_temp.seed_u(b, 15) < 0.250 THEN 'submitted'
                WHEN pg_temp.seed_u(b, 15) < 0.400 THEN 'in_production'
                WHEN pg_temp.seed_u(b, 15) < 0.600 THEN 'shipped'
                WHEN pg_temp.seed_u(b, 15) < 0.900 THEN 'delivered'
                WHEN pg_temp.seed_u(b, 15) < 0.998 THEN 'cancelled'
                WHEN pg_temp.seed_u(b, 15) < 0.999 THEN ' shipped '
                ELSE pg_temp.seed_pick(ARRAY['Shipped', 'unknown', 'DRAFT', 'canceled'], pg_temp.seed_u(b, 54))
           END AS status
    FROM (SELECT g AS i, pg_temp.seed_block(:seed, 'orders', g) AS b
          FROM generate_series(1, :n) AS g OFFSET 0) AS blocks
    OFFSET 0
) AS r;
