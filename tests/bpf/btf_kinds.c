/* Every BTF kind clang emits, for tests/btf: bitfields, 64-bit enums, floats, tags, sections. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#define __tag(x) __attribute__((btf_decl_tag(x)))
#define __ttag(x) __attribute__((btf_type_tag(x)))

enum small { SMALL_A = 1, SMALL_B = 2, SMALL_NEG = -3 };
enum big { BIG_LOW = 1, BIG_HIGH = 0xfedcba9876543210ULL };
enum sbig { SBIG_NEG = -5000000000LL, SBIG_POS = 5000000000LL };

struct fwd_only;
union fwd_union;

typedef unsigned long long u64_t;

struct bits {
	unsigned int a : 3;
	int b : 5;
	unsigned long long c : 40;
	_Bool flag : 1;
	unsigned char tail;
} __tag("bits_struct");

union either {
	int i;
	float f;
	char bytes[4];
};

struct kinds {
	char name[16];
	signed char sc;
	unsigned char uc;
	short s;
	unsigned short us;
	int i __tag("member_tag");
	unsigned int ui;
	long l;
	unsigned long ul;
	long long ll;
	unsigned long long ull;
	_Bool b;
	float f;
	double d;
	long double ld;
	enum small e;
	enum big eb;
	enum sbig esb;
	struct bits bf;
	union either u;
	struct {
		int x;
		union {
			int y;
			short z;
		};
	} anon;
	int matrix[2][3];
	const volatile int cv;
	int *restrict rp;
	int __ttag("user") *tagged;
	struct fwd_only *fwd;
	union fwd_union *fwdu;
	u64_t td;
	void (*fnptr)(int, const char *, ...);
	struct kinds *self;
};

/* an event record (tests/btf/test_values.py, benchmarks/btf.py) */
struct data_t {
	int pid;
	int uid;
	char command[16];
	char message[12];
};

/* a map value for comparing values.format_json/format_plain with bpftool map dump (which
 * cannot print floats) */
struct dump_value {
	char comm[8];
	unsigned char raw[4];
	char bytes[4];
	short s;
	unsigned short us;
	int i;
	unsigned int ui;
	long long ll;
	unsigned long long ull;
	enum small e;
	enum small e_unknown;
	enum big eb;
	struct bits bf;
	union {
		int alias;
		short half;
	};
	int grid[2][2];
	void *ptr;
	struct data_t nested;
	_Bool ok;
	int after;
	unsigned __int128 wide;
	u64_t td;
	const volatile int cvi;
};

struct data_t data_g;
struct dump_value dump_value_g;
struct kinds global_kinds __tag("var_tag");
int counter SEC(".data.counters") = 7;
static volatile const int ro_value = 42;
u64_t bss_value;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8);
	__type(key, int);
	__type(value, struct kinds);
} kinds_map SEC(".maps");

extern int some_ksym __ksym;

static __attribute__((noinline)) int helper(int x __tag("param_tag"), struct bits *p) __tag("func_tag")
{
	return x + p->a + ro_value;
}

SEC("socket")
int prog(struct __sk_buff *skb)
{
	struct bits b = {.a = 1};
	int key = 0;
	struct kinds *k = bpf_map_lookup_elem(&kinds_map, &key);

	if (k)
		return helper(k->i, &b) + counter + (int)bss_value + global_kinds.sc;
	return helper(skb->len, &b);
}

char LICENSE[] SEC("license") = "GPL";
