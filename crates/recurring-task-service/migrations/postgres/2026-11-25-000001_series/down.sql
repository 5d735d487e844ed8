DROP TABLE next_occurrences;
DROP TABLE occurrences;
DROP TABLE series;
