-- functions.sql: session-only helpers for the demo data scripts (pg_temp: nothing stays behind).
-- Everything is a function of its arguments: no random(), no now(), so every load is identical.

-- A Kazakh mobile number in one of seven formats people really type (fmt picks the format):
-- +7 708 888 88 88, 87088888888, +77088888888, 8-708-888-88-88, 77088888888,
-- 8 (708) 888-88-88, +7 (708) 888-88-88. n picks the operator code and the digits.
CREATE FUNCTION pg_temp.demo_phone(n bigint, fmt bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE fmt % 7
		WHEN 0 THEN format('+7 %s %s %s %s', op, substr(d, 1, 3), substr(d, 4, 2), substr(d, 6, 2))
		WHEN 1 THEN '8' || op || d
		WHEN 2 THEN '+7' || op || d
		WHEN 3 THEN format('8-%s-%s-%s-%s', op, substr(d, 1, 3), substr(d, 4, 2), substr(d, 6, 2))
		WHEN 4 THEN '7' || op || d
		WHEN 5 THEN format('8 (%s) %s-%s-%s', op, substr(d, 1, 3), substr(d, 4, 2), substr(d, 6, 2))
		ELSE format('+7 (%s) %s-%s-%s', op, substr(d, 1, 3), substr(d, 4, 2), substr(d, 6, 2))
	END
	FROM (SELECT (ARRAY['700', '701', '702', '705', '707', '708', '747', '771', '775', '777', '778'])
	             [1 + (n % 11)::int] AS op,
	             lpad(((n * 7919 + 1234567) % 10000000)::text, 7, '0') AS d) AS s
$$;

-- A cuid-like text id (25 characters, starting with "c"), stable for the same kind and key.
CREATE FUNCTION pg_temp.demo_cuid(kind text, key text) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
	SELECT 'c' || substr(md5(kind || ':' || key), 1, 24)
$$;
