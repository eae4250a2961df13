/* Types covering every construct pybpf's BTF-to-C dumper must reproduce (tests/btf/test_cdump.py):
 * each is reachable from a global below, so clang puts it in the object's BTF. No programs. */
typedef unsigned int u32;
typedef unsigned long long u64;

struct bits {
	unsigned int a: 3;
	int b: 5;
	unsigned int: 0;
	unsigned char c: 1;
	unsigned long long d: 40;
	u32 e: 7;
	short f;
};

union ubits {
	unsigned int x: 12;
	unsigned char y;
	u64 z: 33;
};

struct packed_s {
	char c;
	int i;
	long long l;
} __attribute__((packed));

struct packed_tail {
	int a;
	short b;
} __attribute__((packed));

struct with_packed {
	char c;
	struct packed_s p;
	int after;
};

struct aligned_s {
	int a;
} __attribute__((aligned(16)));

struct aligned_member {
	char c;
	int i __attribute__((aligned(8)));
	struct aligned_s s;
	char tail;
};

struct gaps {
	char c;
	long long l;
	char d;
	int i;
	char e;
};

struct nested_anon {
	int kind;
	union {
		struct {
			int x, y;
		};
		struct {
			long long wide;
		} w;
		char raw[8];
	};
	struct {
		enum { RED, GREEN = 5, BLUE } colour;
		const char *label;
	} meta;
};

typedef struct {
	int x;
	int y;
} point_t;

typedef int handler_t(int, char *);
typedef void (*(*getter_t)(int))(long);

struct funcs {
	int (*cb)(int, char *);
	void (*noargs)(void);
	int (*log)(const char *, ...);
	int (*ops[4])(void *);
	handler_t *h;
	getter_t g;
	void (*(*retfn)(int))(long);
	struct funcs *(*self)(struct funcs *);
	point_t (*mk)(int, int);
};

enum u_enum { U_A = 0, U_B = 1, U_MAX = 4294967295u };
enum s_enum { S_NEG = -2, S_ZERO = 0, S_POS = 7 };
enum big_enum { BIG_SMALL = 1, BIG_HUGE = 0x123456789ULL };
enum neg_big_enum { NB_MIN = -0x100000000LL, NB_ONE = 1 };
enum __attribute__((packed)) byte_enum { BY_A = 1, BY_B = 200 };

struct enums {
	enum u_enum u;
	enum s_enum s;
	enum big_enum b;
	enum neg_big_enum nb;
	enum byte_enum by;
	enum byte_enum by2;
	enum { ANON_X = 3 } anon;
};

struct opaque;
struct node;
struct other {
	struct node *head;
};
struct node {
	struct node *next;
	struct other o;
	struct opaque *op;
};

struct arrays {
	int m[2][3];
	char *names[4];
	int (*pa)[5];
	const char *const *pp;
	struct node nodes[2];
	point_t pts[3];
	char data[];
};

struct quals {
	const volatile int *const cvp;
	char *restrict rp;
	volatile u64 v;
	const point_t cp;
	int __attribute__((btf_type_tag("user"))) *up;
	_Bool flag;
	float f;
	double d;
};

struct empty {};

struct bits g_bits;
union ubits g_ubits;
struct with_packed g_with_packed;
struct packed_tail g_packed_tail;
struct aligned_member g_aligned_member;
struct gaps g_gaps;
struct nested_anon g_nested_anon;
struct funcs g_funcs;
struct enums g_enums;
struct arrays g_arrays;
struct quals g_quals;
struct empty g_empty;
handler_t *g_handler;
