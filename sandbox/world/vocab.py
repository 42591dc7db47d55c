"""Word lists the world generator draws from.

Kept small and embedded (no Faker) because the generator must make a million people in
minutes, and a fixed list keeps worlds identical across library versions.
"""

FIRST_NAMES = """
Emma Liam Olivia Noah Ava Elijah Sophia James Isabella William Mia Benjamin Charlotte Lucas Amelia
Henry Harper Alexander Evelyn Mason Abigail Michael Emily Ethan Ella Daniel Elizabeth Jacob Camila
Logan Luna Jackson Sofia Levi Avery Sebastian Mila Mateo Aria Jack Scarlett Owen Penelope Theodore
Layla Aiden Chloe Samuel Victoria Joseph Madison John Eleanor David Grace Wyatt Nora Matthew Riley
Luke Zoey Asher Hannah Carter Hazel Julian Lily Grayson Ellie Leo Violet Jayden Lillian Gabriel Zoe
Isaac Stella Lincoln Aurora Anthony Natalie Hudson Emilia Dylan Everly Ezra Leah Thomas Aubrey
Charles Willow Christopher Addison Jaxon Lucy Maverick Audrey Josiah Bella Isaiah Nova Andrew
Brooklyn Elias Paisley Joshua Savannah Nathan Claire Caleb Skylar Ryan Isla Adrian Genesis Miles
Naomi Eli Elena Nolan Caroline Christian Eliana Aaron Anna Cameron Maya Ezekiel Valentina Colton
Ruby Luca Kennedy Landon Ivy Hunter Ariana Jonathan Aaliyah Santiago Cora Axel Madelyn Easton Alice
Cooper Kinsley Jeremiah Hailey Angel Gabriella Roman Allison Connor Gianna Jameson Serenity Robert
Samantha Greyson Sarah Jordan Quinn Ian Eva Carson Piper Jaxson Sophie Leonardo Sadie Nicholas
Delilah Dominic Josephine Austin Nevaeh Everett Adeline Brooks Arya Xavier Emery Kai Lydia Jose
Clara Parker Vivian Adam Madeline Jace Peyton Wesley Julia Kayden Rylee Silas Brielle Bennett Reagan
""".split()  # noqa: SIM905 (a word list reads better as text)

LAST_NAMES = """
Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez Lopez Gonzalez
Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson White Harris Sanchez Clark
Ramirez Lewis Robinson Walker Young Allen King Wright Scott Torres Nguyen Hill Flores Green Adams
Nelson Baker Hall Rivera Campbell Mitchell Carter Roberts Gomez Phillips Evans Turner Diaz Parker
Cruz Edwards Collins Reyes Stewart Morris Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper
Peterson Bailey Reed Kelly Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James
Bennett Gray Mendoza Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez
Powell Jenkins Perry Russell Sullivan Bell Coleman Butler Henderson Barnes Gonzales Fisher Vasquez
Simmons Romero Jordan Patterson Alexander Hamilton Graham Reynolds Griffin Wallace Moreno West Cole
Hayes Bryant Herrera Gibson Ellis Tran Medina Aguilar Stevens Murray Ford Castro Marshall Owens
Harrison Fernandez McDonald Woods Washington Kennedy Wells Vargas Henry Chen Freeman Webb Tucker
Guzman Burns Crawford Olson Simpson Porter Hunter Gordon Mendez Silva Shaw Snyder Mason Dixon Munoz
Hunt Hicks Holmes Palmer Wagner Black Robertson Boyd Rose Stone Salazar Fox Warren Mills Meyer
""".split()  # noqa: SIM905 (a word list reads better as text)

EMAIL_DOMAINS = (
    ("gmail.com", 40),
    ("yahoo.com", 12),
    ("outlook.com", 10),
    ("hotmail.com", 8),
    ("icloud.com", 10),
    ("aol.com", 3),
    ("proton.me", 3),
    ("gmx.net", 3),
    ("comcast.net", 3),
    ("mail.com", 2),
    ("fastmail.com", 2),
    ("live.com", 4),
)

# Typos people make in the domain part when typing an email at checkout.
DOMAIN_TYPOS = {
    "gmail.com": ("gmial.com", "gmail.con", "gmai.com", "gnail.com"),
    "yahoo.com": ("yaho.com", "yahoo.co"),
    "outlook.com": ("outlok.com", "outlook.co"),
    "hotmail.com": ("hotmial.com", "hotmail.co"),
    "icloud.com": ("icloud.co", "iclod.com"),
}

# (city, region, country, postal prefix, phone area code)
CITIES = (
    ("New York", "NY", "US", "100", "212"),
    ("Brooklyn", "NY", "US", "112", "718"),
    ("Los Angeles", "CA", "US", "900", "213"),
    ("San Francisco", "CA", "US", "941", "415"),
    ("San Diego", "CA", "US", "921", "619"),
    ("Chicago", "IL", "US", "606", "312"),
    ("Houston", "TX", "US", "770", "713"),
    ("Austin", "TX", "US", "787", "512"),
    ("Dallas", "TX", "US", "752", "214"),
    ("Phoenix", "AZ", "US", "850", "602"),
    ("Philadelphia", "PA", "US", "191", "215"),
    ("Seattle", "WA", "US", "981", "206"),
    ("Portland", "OR", "US", "972", "503"),
    ("Denver", "CO", "US", "802", "303"),
    ("Boston", "MA", "US", "021", "617"),
    ("Miami", "FL", "US", "331", "305"),
    ("Atlanta", "GA", "US", "303", "404"),
    ("Minneapolis", "MN", "US", "554", "612"),
    ("Nashville", "TN", "US", "372", "615"),
    ("Columbus", "OH", "US", "432", "614"),
)

STREETS = (
    "Main St",
    "Oak Ave",
    "Maple Dr",
    "Cedar Ln",
    "Pine St",
    "Elm St",
    "Washington Ave",
    "Lake Rd",
    "Hill St",
    "Park Ave",
    "2nd St",
    "Sunset Blvd",
    "River Rd",
    "Church St",
)

# (category, price range, products in catalog)
CATEGORIES = (
    ("Running Shoes", (79.0, 179.0), 30),
    ("Trail Shoes", (99.0, 199.0), 18),
    ("Jackets", (89.0, 289.0), 24),
    ("Base Layers", (29.0, 79.0), 26),
    ("Socks", (9.0, 24.0), 20),
    ("Backpacks", (49.0, 169.0), 18),
    ("Water Bottles", (14.0, 39.0), 14),
    ("Headlamps", (24.0, 89.0), 10),
    ("Yoga", (19.0, 119.0), 22),
    ("Accessories", (7.0, 49.0), 28),
    ("Tents", (149.0, 499.0), 12),
    ("Sleeping Bags", (89.0, 329.0), 12),
)
ADJECTIVES = (
    "Swift",
    "Alpine",
    "Summit",
    "Coastal",
    "Urban",
    "Ridge",
    "Nimbus",
    "Terra",
    "Aero",
    "Glacier",
    "Canyon",
    "Drift",
    "Pulse",
    "Ember",
    "Harbor",
    "Vista",
    "Boreal",
    "Zephyr",
)

SHOP_NAME = "Northwind Outfitters"
SHOP_DOMAIN = "northwind-outfitters.com"
SUPPORT_EMAIL = "support@northwind-outfitters.com"
BRAND_IG_USERNAME = "northwindoutfitters"

JUNK_EMAILS = ("test@test.com", "n/a", "none@none.com", "noemail@example.com")
JUNK_PHONES = ("0000000000", "n/a", "1234567890")

UTM_SOURCES = (
    ("google", "cpc", 30),
    ("instagram", "social", 15),
    ("newsletter", "email", 15),
    ("facebook", "social", 10),
    ("(direct)", "(none)", 25),
    ("bing", "cpc", 5),
)

POSITIVE_COMMENTS = (
    "Love my new {p}! 😍",
    "The {p} is amazing, best purchase this year",
    "Obsessed with the {p} 🔥",
    "Great quality, the {p} fits perfectly",
    "Just got the {p}, super happy with it!",
    "10/10 would buy the {p} again",
)
NEGATIVE_COMMENTS = (
    "My {p} broke after two weeks 😡",
    "Shipping took forever, still waiting on my {p}",
    "Disappointed with the {p}, not worth the price",
    "Customer service never answered about my {p}",
    "The {p} looks nothing like the photos 👎",
    "Returned the {p}, terrible fit",
)
NEUTRAL_COMMENTS = (
    "Does the {p} come in other colors?",
    "Is the {p} true to size?",
    "When will the {p} be back in stock?",
    "How does the {p} compare to last year's?",
    "Any discount on the {p}?",
    "Is the {p} waterproof?",
)
