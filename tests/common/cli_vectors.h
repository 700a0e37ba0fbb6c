/*
 * cli_vectors.h - the header vectors of PROXY-PROTOCOL.md section 12 as hex
 * with the JSON that decode prints for them, shared by test_cli_decode.c and
 * test_cli_encode.c (static: each test file uses what it needs).
 */
#ifndef PPFWD_TESTS_CLI_VECTORS_H
#define PPFWD_TESTS_CLI_VECTORS_H

/* ---- vectors (PROXY-PROTOCOL.md section 12) ------------------------------ */

#define V2_SIG "0d0a0d0a000d0a515549540a"
#define ADDRS4 "c0a80001c0a8000bdc0401bb"
#define SSL_VALUE                                                                                  \
    "0700000000210007544c5376312e3322000e636c69656e742e6578616d706c65230016544c535f4145535f3132"   \
    "385f47434d5f534841323536"

struct vector {
    const char *hex;
    const char *json; /* decode's output for a valid vector; NULL for invalid */
};

#define J_PROXY4 "\"command\":\"proxy\",\"family\":\"tcp4\""
#define J_ADDRS4 "\"src\":\"192.168.0.1:56324\",\"dst\":\"192.168.0.11:443\""

static const struct vector valid[] = {
    {V2_SIG "20000000",
     "{\"version\":2,\"command\":\"local\",\"family\":\"unspec\",\"length\":16,\"tlvs\":[]}\n"},
    {V2_SIG "2011000c0a0000010a000002045708ae",
     "{\"version\":2,\"command\":\"local\",\"family\":\"tcp4\",\"length\":28,\"tlvs\":[]}\n"},
    {V2_SIG "2111000c7f0000017f000001ca2b0401",
     "{\"version\":2," J_PROXY4 ",\"src\":\"127.0.0.1:51755\",\"dst\":\"127.0.0.1:1025\","
     "\"length\":28,\"tlvs\":[]}\n"},
    {V2_SIG "2112000c7f0000017f000001ca2b0401",
     "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp4\",\"src\":\"127.0.0.1:51755\","
     "\"dst\":\"127.0.0.1:1025\",\"length\":28,\"tlvs\":[]}\n"},
    {V2_SIG "2121002420010db800000000000000000000000120010db8000000000000000000000002dc0401bb",
     "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\",\"src\":\"[2001:db8::1]:56324\","
     "\"dst\":\"[2001:db8::2]:443\",\"length\":52,\"tlvs\":[]}\n"},
    {V2_SIG "2122002420010db800000000000000000000000120010db8000000000000000000000002dc0401bb",
     "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp6\",\"src\":\"[2001:db8::1]:56324\","
     "\"dst\":\"[2001:db8::2]:443\",\"length\":52,\"tlvs\":[]}\n"},
    {V2_SIG "211100137f0000017f000001ca2b04010300043442e161",
     "{\"version\":2," J_PROXY4 ",\"src\":\"127.0.0.1:51755\",\"dst\":\"127.0.0.1:1025\","
     "\"length\":35,\"tlvs\":[{\"type\":3,\"name\":\"crc32c\",\"hex\":\"3442e161\"}]}\n"},
    {V2_SIG "2121002b0000000000000000000000000000000100000000000000000000000000000001cf8f0401"
            "030004fd16ee60",
     "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\",\"src\":\"[::1]:53135\","
     "\"dst\":\"[::1]:1025\",\"length\":59,"
     "\"tlvs\":[{\"type\":3,\"name\":\"crc32c\",\"hex\":\"fd16ee60\"}]}\n"},
    {V2_SIG "21110021" ADDRS4 "02000b6578616d706c652e636f6d030004bb56885c",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":49,\"tlvs\":["
     "{\"type\":2,\"name\":\"authority\",\"value\":\"example.com\","
     "\"hex\":\"6578616d706c652e636f6d\"},"
     "{\"type\":3,\"name\":\"crc32c\",\"hex\":\"bb56885c\"}]}\n"},
    {V2_SIG "2111002e" ADDRS4 "010002683202000b6578616d706c652e636f6d040000050009636f6e6e2d"
            "30303031",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":62,\"tlvs\":["
     "{\"type\":1,\"name\":\"alpn\",\"value\":\"h2\",\"hex\":\"6832\"},"
     "{\"type\":2,\"name\":\"authority\",\"value\":\"example.com\","
     "\"hex\":\"6578616d706c652e636f6d\"},"
     "{\"type\":4,\"name\":\"noop\",\"hex\":\"\"},"
     "{\"type\":5,\"name\":\"unique-id\",\"hex\":\"636f6e6e2d30303031\"}]}\n"},
    {V2_SIG "21110048" ADDRS4 "200039" SSL_VALUE,
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":88,\"tlvs\":["
     "{\"type\":32,\"name\":\"ssl\",\"hex\":\"" SSL_VALUE "\","
     "\"ssl\":{\"client\":7,\"verify\":0,\"version\":\"TLSv1.3\",\"cn\":\"client.example\","
     "\"cipher\":\"TLS_AES_128_GCM_SHA256\"}}]}\n"},
    {V2_SIG "21110026" ADDRS4 "ea001701767063652d3031323334353637383961626364656630",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":54,\"tlvs\":["
     "{\"type\":234,\"name\":\"aws\",\"value\":\"vpce-0123456789abcdef0\","
     "\"hex\":\"01767063652d3031323334353637383961626364656630\"}]}\n"},
    {V2_SIG "21110014" ADDRS4 "ee00050178563412",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":36,\"tlvs\":["
     "{\"type\":238,\"name\":\"azure\",\"value\":305419896,\"hex\":\"0178563412\"}]}\n"},
    {V2_SIG "21110017" ADDRS4 "e000080102030405060708",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":39,\"tlvs\":["
     "{\"type\":224,\"name\":\"gcp\",\"value\":\"72623859790382856\","
     "\"hex\":\"0102030405060708\"}]}\n"},
};

static const char *const valid_v1[][2] = {
    {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
     "{\"version\":1," J_PROXY4 "," J_ADDRS4 ",\"length\":47,\"tlvs\":[]}\n"},
    {"PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n",
     "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\",\"src\":\"[2001:db8::1]:1234\","
     "\"dst\":\"[2001:db8::2]:443\",\"length\":45,\"tlvs\":[]}\n"},
    {"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
     "{\"version\":1," J_PROXY4 ",\"src\":\"255.255.255.255:65535\","
     "\"dst\":\"255.255.255.255:65535\",\"length\":56,\"tlvs\":[]}\n"},
    {"PROXY UNKNOWN\r\n",
     "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":15,\"tlvs\":[]}\n"},
    {"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
     "ffff 65535 65535\r\n",
     "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":107,\"tlvs\":[]}\n"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n",
     "{\"version\":1," J_PROXY4 ",\"src\":\"1.2.3.4:0\",\"dst\":\"5.6.7.8:0\",\"length\":32,"
     "\"tlvs\":[]}\n"},
    {"PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 56324 443\r\n",
     "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\","
     "\"src\":\"[::ffff:192.168.0.1]:56324\",\"dst\":\"[2001:db8::2]:443\",\"length\":53,"
     "\"tlvs\":[]}\n"},
};

static const char *const invalid_hex[] = {
    V2_SIG "1111000c7f0000017f00000100010002",
    V2_SIG "2211000c7f0000017f00000100010002",
    V2_SIG "2113000c7f0000017f00000100010002",
    V2_SIG "2141000c7f0000017f00000100010002",
    V2_SIG "21120000",
    V2_SIG "2111000b7f0000017f000001000100",
    V2_SIG "211100137f0000017f0000010001000202000a61626364",
    V2_SIG "2111000e7f0000017f000001000100020400",
    V2_SIG "211100137f0000017f000001ca2b04010300043442e160",
    V2_SIG "211100127f0000017f00000100010002030003000000",
    "0d0a0d0a000d0a515549540b2111000c7f0000017f00000100010002",
};

static const char *const invalid_v1[] = {
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX",
    "PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
    "PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",
    "PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n",
    "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    "proxy tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 256.1.1.1 1.1.1.1 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    ("PROXY UNKNOWN AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
};

#endif /* PPFWD_TESTS_CLI_VECTORS_H */
