#!/usr/bin/env python3
"""Writes the fixture corpus under fixtures/: good documents on distinct topics in
every supported format, and a set of bad files that must fail with clear reasons.

Deterministic: running it twice produces identical bytes. Uses only the standard library.
"""
import os
import sys
import zipfile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

DOCS = {
    "astronomy/black-holes.txt": (
        "Black holes",
        [
            "A black hole is a region of spacetime where gravity is so strong that nothing, not even light, can escape once it crosses the event horizon. The boundary is not a physical surface but a point of no return defined by the escape velocity reaching the speed of light.",
            "Stellar black holes form when a massive star, usually more than twenty times the mass of the Sun, exhausts its nuclear fuel. The core collapses under its own gravity in a supernova, and if the remnant exceeds about three solar masses no known force can halt the collapse.",
            "Supermassive black holes with millions or billions of solar masses sit at the centres of most large galaxies. The one at the centre of the Milky Way, Sagittarius A*, has about four million solar masses and was imaged by the Event Horizon Telescope in 2022.",
            "Black holes are detected indirectly: by the X-rays emitted from gas heated in an accretion disk, by stars orbiting an unseen companion, and since 2015 by gravitational waves recorded by LIGO when two black holes spiral together and merge.",
            "Stephen Hawking predicted that quantum effects near the event horizon make black holes emit faint thermal radiation. Hawking radiation means a black hole slowly loses mass and, over unimaginably long times, may evaporate completely.",
        ],
    ),
    "cooking/sourdough.md": (
        "Baking sourdough bread",
        [
            "Sourdough bread is leavened by a starter, a fermented mixture of flour and water colonised by wild yeast and lactic acid bacteria. The bacteria produce lactic and acetic acids that give the loaf its tangy flavour and help it keep longer.",
            "## Feeding the starter\n\nA healthy starter is fed equal weights of flour and water once or twice a day. It is ready to bake with when it doubles in volume within four to eight hours of a feed and smells pleasantly sour, like yoghurt.",
            "## Mixing and bulk fermentation\n\nMix the flour and most of the water and let the dough rest for an autolyse of thirty minutes before adding starter and salt. During bulk fermentation, perform sets of stretch and folds every half hour to build gluten strength.",
            "## Shaping and proofing\n\nPre-shape the dough into a loose round, rest it, then shape it tightly and place it seam side up in a floured banneton. A slow cold proof in the refrigerator overnight deepens the flavour and makes scoring easier.",
            "## Baking\n\nBake in a preheated Dutch oven at 250 degrees Celsius with the lid on for twenty minutes so the trapped steam lets the loaf spring, then remove the lid and bake until the crust is deep brown.",
        ],
    ),
    "gardening/tomatoes.pdf": (
        "Growing tomatoes",
        [
            "Tomatoes are warm season plants that need at least six to eight hours of direct sunlight a day. Start seeds indoors six weeks before the last frost and transplant the seedlings once night temperatures stay above ten degrees Celsius.",
            "Plant tomato seedlings deeply, burying the stem up to the first true leaves, because the buried stem grows extra roots. Space plants about sixty centimetres apart so air can move between them and foliage dries quickly after rain.",
            "Indeterminate tomato varieties keep growing and fruiting all season and need tall stakes or cages. Pinch out the side shoots, called suckers, that form between the main stem and the leaf branches to focus energy on fruit.",
            "Water tomatoes deeply and regularly at the base of the plant. Irregular watering causes blossom end rot, a dark sunken patch at the bottom of the fruit caused by poor calcium uptake, and also makes ripening fruit split.",
            "Common tomato problems include early blight, late blight and hornworms. Mulching the soil, rotating crops each year and removing infected lower leaves all reduce fungal disease in the vegetable garden.",
        ],
    ),
    "finance/compound-interest.docx": (
        "Compound interest and saving",
        [
            "Compound interest is interest earned on both the original principal and the interest already added to it. Over long periods it makes savings grow exponentially rather than linearly, which is why starting to save early matters so much.",
            "The future value of a deposit is the principal multiplied by one plus the interest rate per period, raised to the number of periods. A deposit of one thousand dollars at five percent annual interest grows to about 1629 dollars after ten years.",
            "The rule of 72 is a quick estimate of how long money takes to double: divide 72 by the annual interest rate in percent. At six percent a year an investment doubles in roughly twelve years.",
            "Compounding frequency matters too. Interest compounded monthly yields slightly more than the same nominal rate compounded annually, and the annual percentage yield expresses the effective rate after compounding.",
            "Compounding also works against borrowers. Credit card debt at twenty percent annual interest, left unpaid, doubles in under four years, so paying off high interest debt is often the best return a saver can get.",
        ],
    ),
    "history/roman-aqueducts.txt": (
        "Roman aqueducts",
        [
            "The ancient Romans built aqueducts to carry fresh water from distant springs and rivers into their cities. The first, the Aqua Appia, was built in 312 BC, and by the third century AD eleven aqueducts supplied the city of Rome.",
            "Roman engineers moved water by gravity alone, so an aqueduct channel had to descend at a steady, very gentle gradient over tens of kilometres. Surveyors used instruments such as the chorobates and the groma to keep the slope constant.",
            "Most of an aqueduct ran underground in covered channels. The famous arched bridges, like the Pont du Gard in southern France, were built only where the channel had to cross a valley at the required height.",
            "Water arrived at a distribution tank, the castellum, which fed public fountains, baths and private houses through lead pipes. Public fountains had priority, and wealthy citizens paid for a private connection.",
            "The aqueducts were maintained by a staff of hundreds of slaves under a water commissioner. Frontinus, appointed curator aquarum in 97 AD, wrote a treatise describing the system and the fraud of illegal taps.",
        ],
    ),
    "biology/honeybees.md": (
        "Honeybee colonies",
        [
            "A honeybee colony is a superorganism of one queen, tens of thousands of female worker bees and, in summer, a few hundred male drones. The queen lays up to two thousand eggs a day during the peak of the season.",
            "## Division of labour\n\nWorker bees change jobs as they age. Young workers clean cells and feed larvae with royal jelly, middle aged workers build wax comb and guard the entrance, and the oldest workers forage for nectar and pollen.",
            "## The waggle dance\n\nA forager that finds a rich patch of flowers returns to the hive and performs the waggle dance. The angle of the dance relative to vertical encodes the direction of the food relative to the sun, and its duration encodes distance.",
            "## Making honey\n\nForagers carry nectar home in their honey stomach. House bees add enzymes that convert sucrose into glucose and fructose, and fan their wings to evaporate water until the honey is thick enough to cap with wax.",
            "## Swarming\n\nIn spring a crowded colony reproduces by swarming: the old queen leaves with about half the workers to found a new nest, while the remaining bees raise a new queen from a specially built queen cell.",
        ],
    ),
    "sports/marathon-training.pdf": (
        "Training for a marathon",
        [
            "A marathon covers 42.195 kilometres, and most training plans for a first marathon last sixteen to twenty weeks. The foundation is a gradual increase in weekly running mileage of no more than about ten percent a week.",
            "The weekly long run is the cornerstone of marathon training. It builds endurance, teaches the body to burn fat, and grows from around fifteen kilometres to a peak of thirty to thirty two kilometres three weeks before race day.",
            "Most training runs should be at an easy conversational pace. Tempo runs at lactate threshold pace and interval sessions on the track add speed, but too much hard running raises the risk of injury and overtraining.",
            "During the race, runners need carbohydrates to avoid hitting the wall, the sudden fatigue when glycogen stores run out. Practise taking energy gels and drinks on long training runs so the stomach is used to them.",
            "The taper reduces mileage over the final two or three weeks so the legs recover and arrive fresh at the start line. Resist the temptation to squeeze in extra long runs during the taper.",
        ],
    ),
    "music/jazz-improvisation.docx": (
        "Jazz improvisation",
        [
            "Jazz improvisation is the spontaneous invention of melody over a repeating chord progression. Players learn the chord changes of a tune, its harmonic road map, so that their improvised lines outline the harmony.",
            "The ii V I progression is the most common cadence in jazz standards. Learning to play scales and arpeggios over minor seventh, dominant seventh and major seventh chords in every key is a core part of practice.",
            "Jazz musicians learn the language by transcribing solos: listening to records of players like Charlie Parker, Miles Davis and John Coltrane and copying their phrases by ear, then playing them in different keys.",
            "Swing feel gives jazz its rhythmic character. Eighth notes are played unevenly, long and short, with accents often on the off beats, and the rhythm section of bass, drums and piano keeps the groove.",
            "Trading fours is a practice in which soloists alternate four bar phrases with the drummer. It builds musical conversation, where each improviser responds to and develops the ideas of the previous one.",
        ],
    ),
}


def write(rel, data: bytes):
    path = os.path.join(ROOT, rel) if isinstance(rel, str) else os.path.join(os.fsencode(ROOT), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def text_document(title, paragraphs, markdown):
    head = f"# {title}\n\n" if markdown else f"{title}\n\n"
    return (head + "\n\n".join(paragraphs) + "\n").encode()


def wrap(text, width=90):
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    if line:
        lines.append(line)
    return lines


def pdf_document(title, paragraphs, page_per_paragraph=False):
    """A small, valid PDF: Helvetica text pages with a correct xref table. With
    page_per_paragraph, each paragraph starts a page of its own (the title shares the first)."""
    if page_per_paragraph:
        pages = [([title, ""] if i == 0 else []) + wrap(p) for i, p in enumerate(paragraphs)]
    else:
        lines = [title, ""]
        for p in paragraphs:
            lines += wrap(p) + [""]
        pages = [lines[i : i + 45] for i in range(0, len(lines), 45)]

    def esc(s):
        return s.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    objects = []  # index 0 -> object 1
    objects.append(b"<< /Type /Catalog /Pages 2 0 R >>")
    objects.append(None)  # pages, filled below
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    for page_lines in pages:
        body = "BT /F1 11 Tf 14 TL 56 780 Td " + " ".join(f"({esc(l)}) Tj T*" for l in page_lines) + " ET"
        stream = body.encode("latin-1")
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        content_id = len(objects)
        objects.append(
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>"
            % content_id
        )
        kids.append(len(objects))
    objects[1] = b"<< /Type /Pages /Kids [" + b" ".join(b"%d 0 R" % k for k in kids) + b"] /Count %d >>" % len(kids)

    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + obj + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def package(entries, mimetype=None):
    """A zip package with fixed dates; an OpenDocument or EPUB mimetype goes first, stored."""
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        if mimetype is not None:
            info = zipfile.ZipInfo("mimetype", date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED
            z.writestr(info, mimetype)
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


XML_HEAD = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
PKG_RELS_NS = "http://schemas.openxmlformats.org/package/2006/relationships"
OFFICE_RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def relationships(rels):
    """A .rels part: (id, type's last segment, target)."""
    body = "".join(
        f'<Relationship Id="{rid}" Type="{OFFICE_RELS}/{kind}" Target="{target}"/>' for rid, kind, target in rels
    )
    return f'{XML_HEAD}<Relationships xmlns="{PKG_RELS_NS}">{body}</Relationships>'


def content_types(overrides):
    body = "".join(f'<Override PartName="/{name}" ContentType="{ctype}"/>' for name, ctype in overrides)
    return (
        f'{XML_HEAD}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f"{body}</Types>"
    )


def core_properties(title):
    from xml.sax.saxutils import escape

    return (
        f"{XML_HEAD}<cp:coreProperties"
        ' xmlns:cp="http://schemas.openxmlformats.org/package/2006/metadata/core-properties"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/">'
        f"<dc:title>{escape(title)}</dc:title><dc:creator>Fixture script</dc:creator></cp:coreProperties>"
    )


W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def docx_document(title, paragraphs, margins=None):
    """A minimal Office Open XML word-processing package. With margins (header, footer,
    footnote), the title is styled as a heading, the first paragraph cites a footnote, and
    the section has a header and a footer."""
    from xml.sax.saxutils import escape

    def para(text, style=None, note=None):
        props = f'<w:pPr><w:pStyle w:val="{style}"/></w:pPr>' if style else ""
        cite = f'<w:r><w:footnoteReference w:id="{note}"/></w:r>' if note else ""
        return f'<w:p>{props}<w:r><w:t xml:space="preserve">{escape(text)}</w:t></w:r>{cite}</w:p>'

    rels = [("rId1", "officeDocument", "word/document.xml")]
    doc_rels, parts, section = [], [], ""
    if margins:
        header, footer, footnote = margins
        body = para(title, style="Title") + para(paragraphs[0], note=1) + "".join(para(p) for p in paragraphs[1:])
        doc_rels = [("rId1", "header", "header1.xml"), ("rId2", "footer", "footer1.xml"), ("rId3", "footnotes", "footnotes.xml")]
        parts = [
            ("word/header1.xml", f"{XML_HEAD}<w:hdr {W_NS}>{para(header)}</w:hdr>"),
            ("word/footer1.xml", f"{XML_HEAD}<w:ftr {W_NS}>{para(footer)}</w:ftr>"),
            (
                "word/footnotes.xml",
                f'{XML_HEAD}<w:footnotes {W_NS}><w:footnote w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:footnote>'
                f'<w:footnote w:id="1">{para(footnote)}</w:footnote></w:footnotes>',
            ),
        ]
        section = '<w:sectPr><w:headerReference w:type="default" r:id="rId1"/><w:footerReference w:type="default" r:id="rId2"/></w:sectPr>'
        rels.append(("rId2", "metadata/core-properties", "docProps/core.xml"))
        parts.append(("docProps/core.xml", core_properties(title)))
    else:
        body = para(title) + "".join(para(p) for p in paragraphs)
    document = f"{XML_HEAD}<w:document {W_NS}><w:body>{body}{section}</w:body></w:document>"
    types = content_types(
        [("word/document.xml", "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml")]
    )
    return package(
        [
            ("[Content_Types].xml", types),
            ("_rels/.rels", relationships(rels)),
            ("word/document.xml", document),
            ("word/_rels/document.xml.rels", relationships(doc_rels)),
        ]
        + parts
    )


def html_document(title, sections):
    """A page as a site exports it: navigation, a banner, a footer, scripts and styles around
    an article of headed sections (heading, paragraphs, optional list items)."""
    from xml.sax.saxutils import escape

    article = f"<header><h1>{escape(title)}</h1></header>\n"
    for heading, paragraphs, items in sections:
        article += f"<h2>{escape(heading)}</h2>\n"
        article += "".join(f"<p>{escape(p)}</p>\n" for p in paragraphs)
        if items:
            article += "<ul>\n" + "".join(f"  <li>{escape(i)}</li>\n" for i in items) + "</ul>\n"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} | Coastal Heritage Society</title>
<style>body {{ font-family: serif; }} nav a {{ margin: 0 1em; }}</style>
<script>window.analytics = {{ track: function () {{ return "pageview"; }} }};</script>
</head>
<body>
<header class="site"><a href="/">Coastal Heritage Society</a> <a href="/join">Become a member</a></header>
<nav><ul><li><a href="/events">Events</a></li><li><a href="/shop">Gift shop</a></li></ul></nav>
<main>
<article>
{article}</article>
</main>
<footer>&copy; Coastal Heritage Society. Cookie preferences. Privacy policy.</footer>
</body>
</html>
""".encode()


def xlsx_document(title, sheets):
    """A workbook: sheets of rows (strings inline, numbers as values, (formula, cached value)
    pairs as formulas with their cached results)."""
    from xml.sax.saxutils import escape

    def column(i):
        return chr(ord("A") + i)

    def cell(ref, value):
        if isinstance(value, tuple):
            formula, cached = value
            return f'<c r="{ref}"><f>{escape(formula)}</f><v>{cached}</v></c>'
        if isinstance(value, (int, float)):
            return f'<c r="{ref}"><v>{value}</v></c>'
        return f'<c r="{ref}" t="inlineStr"><is><t>{escape(value)}</t></is></c>'

    ns = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'
    entries, book_sheets, book_rels, overrides = [], "", [], []
    for n, (name, rows) in enumerate(sheets, start=1):
        xml_rows = "".join(
            f'<row r="{r}">' + "".join(cell(f"{column(c)}{r}", v) for c, v in enumerate(row)) + "</row>"
            for r, row in enumerate(rows, start=1)
        )
        entries.append((f"xl/worksheets/sheet{n}.xml", f"{XML_HEAD}<worksheet {ns}><sheetData>{xml_rows}</sheetData></worksheet>"))
        book_sheets += f'<sheet name="{escape(name)}" sheetId="{n}" r:id="rId{n}"/>'
        book_rels.append((f"rId{n}", "worksheet", f"worksheets/sheet{n}.xml"))
        overrides.append((f"xl/worksheets/sheet{n}.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"))
    overrides.insert(0, ("xl/workbook.xml", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"))
    workbook = f"{XML_HEAD}<workbook {ns}><sheets>{book_sheets}</sheets></workbook>"
    return package(
        [
            ("[Content_Types].xml", content_types(overrides)),
            ("_rels/.rels", relationships([("rId1", "officeDocument", "xl/workbook.xml"), ("rId2", "metadata/core-properties", "docProps/core.xml")])),
            ("docProps/core.xml", core_properties(title)),
            ("xl/workbook.xml", workbook),
            ("xl/_rels/workbook.xml.rels", relationships(book_rels)),
        ]
        + entries
    )


ODF_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:style="urn:oasis:names:tc:opendocument:xmlns:style:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/" office:version="1.3"'
)


def odf_package(mimetype, content, title, styles=None, encrypted=False):
    """An OpenDocument package. Encrypted: the manifest gives content.xml encryption data and
    its bytes are not XML, as a password-protected file's are."""
    entry = '<manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"'
    if encrypted:
        entry += '><manifest:encryption-data manifest:checksum-type="SHA1/1K" manifest:checksum="AAAA"><manifest:algorithm manifest:algorithm-name="Blowfish CFB" manifest:initialisation-vector="AAAA"/></manifest:encryption-data></manifest:file-entry>'
        content = bytes((i * 151 + 29) % 256 for i in range(1024))
    else:
        entry += "/>"
    manifest = (
        f'{XML_HEAD}<manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
        f'<manifest:file-entry manifest:full-path="/" manifest:media-type="{mimetype}"/>{entry}</manifest:manifest>'
    )
    from xml.sax.saxutils import escape

    meta = f"{XML_HEAD}<office:document-meta {ODF_NS}><office:meta><dc:title>{escape(title)}</dc:title></office:meta></office:document-meta>"
    entries = [("META-INF/manifest.xml", manifest), ("content.xml", content), ("meta.xml", meta)]
    if styles:
        entries.append(("styles.xml", styles))
    return package(entries, mimetype=mimetype)


def odt_document(title, sections, header, footer, note, encrypted=False):
    """An OpenDocument text: headed sections of paragraphs, a footnote on the first
    paragraph, and a page header and footer in the master page."""
    from xml.sax.saxutils import escape

    body = f'<text:h text:outline-level="1">{escape(title)}</text:h>'
    for n, (heading, paragraphs) in enumerate(sections):
        body += f'<text:h text:outline-level="2">{escape(heading)}</text:h>'
        for m, p in enumerate(paragraphs):
            cite = ""
            if n == 0 and m == 0:
                cite = (
                    '<text:note text:id="ftn1" text:note-class="footnote"><text:note-citation>1</text:note-citation>'
                    f"<text:note-body><text:p>{escape(note)}</text:p></text:note-body></text:note>"
                )
            first, _, rest = p.partition(" ")
            body += f'<text:p><text:span>{escape(first)}</text:span><text:s/>{escape(rest)}{cite}</text:p>'
    content = f"{XML_HEAD}<office:document-content {ODF_NS}><office:body><office:text>{body}</office:text></office:body></office:document-content>"
    styles = (
        f"{XML_HEAD}<office:document-styles {ODF_NS}><office:master-styles>"
        '<style:master-page style:name="Standard">'
        f"<style:header><text:p>{escape(header)}</text:p></style:header>"
        f"<style:footer><text:p>{escape(footer)}</text:p></style:footer>"
        "</style:master-page></office:master-styles></office:document-styles>"
    )
    return odf_package("application/vnd.oasis.opendocument.text", content, title, styles, encrypted)


def ods_document(title, sheets, encrypted=False):
    """An OpenDocument spreadsheet: sheets of rows, numbers as float cells."""
    from xml.sax.saxutils import escape

    def cell(value):
        if isinstance(value, (int, float)):
            return f'<table:table-cell office:value-type="float" office:value="{value}"><text:p>{value}</text:p></table:table-cell>'
        return f'<table:table-cell office:value-type="string"><text:p>{escape(value)}</text:p></table:table-cell>'

    tables = ""
    for name, rows in sheets:
        tables += f'<table:table table:name="{escape(name)}">'
        tables += "".join("<table:table-row>" + "".join(cell(v) for v in row) + "</table:table-row>" for row in rows)
        tables += "</table:table>"
    content = f"{XML_HEAD}<office:document-content {ODF_NS}><office:body><office:spreadsheet>{tables}</office:spreadsheet></office:body></office:document-content>"
    return odf_package("application/vnd.oasis.opendocument.spreadsheet", content, title, None, encrypted)


P_NS = (
    'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" '
    'xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"'
)


def pptx_document(title, slides, order):
    """A presentation: slides of (title, bullet points, speaker notes). The slide parts are
    numbered as written, and `order` lists them in presentation order, as after the author
    moved slides around."""
    from xml.sax.saxutils import escape

    def text_body(paragraphs):
        return "<p:txBody><a:bodyPr/>" + "".join(f"<a:p><a:r><a:t>{escape(t)}</a:t></a:r></a:p>" for t in paragraphs) + "</p:txBody>"

    def shape(n, placeholder, paragraphs):
        return (
            f'<p:sp><p:nvSpPr><p:cNvPr id="{n}" name="{placeholder} {n}"/><p:cNvSpPr/><p:nvPr><p:ph type="{placeholder}"/></p:nvPr></p:nvSpPr>'
            f"<p:spPr/>{text_body(paragraphs)}</p:sp>"
        )

    entries, overrides = [], [("ppt/presentation.xml", "application/vnd.openxmlformats-officedocument.presentationml.presentation.main+xml")]
    for n, (heading, points, notes) in enumerate(slides, start=1):
        tree = shape(2, "title", [heading]) + shape(3, "body", points)
        entries.append((f"ppt/slides/slide{n}.xml", f"{XML_HEAD}<p:sld {P_NS}><p:cSld><p:spTree>{tree}</p:spTree></p:cSld></p:sld>"))
        entries.append((f"ppt/slides/_rels/slide{n}.xml.rels", relationships([("rId1", "notesSlide", f"../notesSlides/notesSlide{n}.xml")])))
        number = f'<a:p><a:fld id="{{00000000-0000-0000-0000-00000000000{n}}}" type="slidenum"><a:t>{n}</a:t></a:fld></a:p>'
        notes_tree = shape(2, "body", notes).replace("</p:txBody>", number + "</p:txBody>")
        entries.append((f"ppt/notesSlides/notesSlide{n}.xml", f"{XML_HEAD}<p:notes {P_NS}><p:cSld><p:spTree>{notes_tree}</p:spTree></p:cSld></p:notes>"))
        overrides.append((f"ppt/slides/slide{n}.xml", "application/vnd.openxmlformats-officedocument.presentationml.slide+xml"))
    ids = "".join(f'<p:sldId id="{255 + i}" r:id="rId{n}"/>' for i, n in enumerate(order, start=1))
    presentation = f'{XML_HEAD}<p:presentation {P_NS}><p:sldIdLst>{ids}</p:sldIdLst><p:sldSz cx="12192000" cy="6858000"/></p:presentation>'
    pres_rels = [(f"rId{n}", "slide", f"slides/slide{n}.xml") for n in range(1, len(slides) + 1)]
    return package(
        [
            ("[Content_Types].xml", content_types(overrides)),
            ("_rels/.rels", relationships([("rId1", "officeDocument", "ppt/presentation.xml"), ("rId2", "metadata/core-properties", "docProps/core.xml")])),
            ("docProps/core.xml", core_properties(title)),
            ("ppt/presentation.xml", presentation),
            ("ppt/_rels/presentation.xml.rels", relationships(pres_rels)),
        ]
        + entries
    )


def epub_document(title, chapters, spine, encrypted=False):
    """An EPUB 3 book: chapters of (heading, paragraphs) as XHTML files, read in `spine`
    order (chapter numbers), a navigation document outside the spine. Encrypted: the
    container's encryption.xml lists the chapters, whose bytes are ciphertext."""
    from xml.sax.saxutils import escape

    entries = [
        (
            "META-INF/container.xml",
            '<?xml version="1.0"?><container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">'
            '<rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles></container>',
        )
    ]
    manifest = '<item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>'
    toc = ""
    for n, (heading, paragraphs) in enumerate(chapters, start=1):
        body = f"<h1>{escape(heading)}</h1>" + "".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        xhtml = (
            '<?xml version="1.0" encoding="UTF-8"?><!DOCTYPE html><html xmlns="http://www.w3.org/1999/xhtml">'
            f"<head><title>{escape(heading)}</title></head><body><section>{body}</section></body></html>"
        )
        data = bytes((i * 97 + n) % 256 for i in range(len(xhtml))) if encrypted else xhtml
        entries.append((f"OEBPS/chapter%20{n}.xhtml".replace("%20", " "), data))
        manifest += f'<item id="ch{n}" href="chapter%20{n}.xhtml" media-type="application/xhtml+xml"/>'
        toc += f'<li><a href="chapter%20{n}.xhtml">{escape(heading)}</a></li>'
    itemrefs = "".join(f'<itemref idref="ch{n}"/>' for n in spine)
    opf = (
        '<?xml version="1.0" encoding="UTF-8"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">'
        f'<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:identifier id="id">urn:fixture:{escape(title)}</dc:identifier>'
        f"<dc:title>{escape(title)}</dc:title><dc:language>en</dc:language></metadata>"
        f"<manifest>{manifest}</manifest><spine>{itemrefs}</spine></package>"
    )
    nav = (
        '<?xml version="1.0" encoding="UTF-8"?><html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">'
        f'<head><title>Contents</title></head><body><nav epub:type="toc"><ol>{toc}</ol></nav></body></html>'
    )
    entries += [("OEBPS/content.opf", opf), ("OEBPS/nav.xhtml", nav)]
    if encrypted:
        refs = "".join(
            f'<enc:EncryptedData><enc:CipherData><enc:CipherReference URI="OEBPS/chapter%20{n}.xhtml"/></enc:CipherData></enc:EncryptedData>'
            for n in range(1, len(chapters) + 1)
        )
        entries.append(
            (
                "META-INF/encryption.xml",
                f'<?xml version="1.0"?><encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" xmlns:enc="http://www.w3.org/2001/04/xmlenc#">{refs}</encryption>',
            )
        )
    return package(entries, mimetype="application/epub+zip")


README = """tidewatch
=========

tidewatch predicts the times and heights of high and low water for a harbour from its
harmonic constituents (M2, S2, N2, K1, O1 and the rest), the way the tide tables printed for
harbour pilots are made.

Usage
-----

    tidewatch predict --station brest --from 2026-03-01 --days 7

prints each high and low water in local time with its height above chart datum. Add
--plot to draw the tidal curve as text, and --spring-neap to mark spring and neap tides,
when the Sun and the Moon pull together or at right angles.

Constituents come from a station file: one line per constituent, its amplitude in metres
and its phase lag in degrees. Predictions are only as good as the station's record; a year
of hourly readings gives the main constituents to a few centimetres.
"""

LICENSE = """Permission is hereby granted, free of charge, to any person obtaining a copy of this
software and associated documentation files, to deal in the software without restriction,
including without limitation the rights to use, copy, modify, merge, publish, distribute,
sublicense, and sell copies of the software, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all copies or
substantial portions of the software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED. IN NO
EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY ARISING FROM THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
"""


LIGHTHOUSES = (
    "Keeping the light",
    [
        (
            "The keeper's watch",
            [
                "Before electric lamps, a lighthouse keeper climbed the tower at dusk to light the oil lamp and trimmed the wick through the night so the flame burned bright and without smoke.",
                "Keepers kept a log of every watch: the weather, passing ships, and how often the clockwork that turned the lens had to be wound, usually every few hours.",
            ],
            ["Trim the wick and polish the brass", "Wind the rotation clockwork", "Record visibility in the log book"],
        ),
        (
            "The Fresnel lens",
            [
                "In 1822 the French physicist Augustin Fresnel designed a lens built from concentric rings of glass prisms. It bent and reflected the lamp's light into a single horizontal beam visible more than twenty nautical miles away.",
                "Lenses came in orders by size, from the huge first order lenses of major coastal lights to the small sixth order lenses of harbour entrances.",
            ],
            [],
        ),
        (
            "Automation",
            [
                "Automatic lamp changers, light sensors and remote monitoring made resident keepers unnecessary. The last keepers left most towers in the 1990s, and many lights now run on solar power.",
            ],
            [],
        ),
    ],
)

BIKE_SHEETS = [
    (
        "Service intervals",
        [
            ["Component", "Interval (km)", "Task"],
            ["Chain", 3000, "Measure chain stretch with a wear checker and replace the chain at 0.5 percent elongation"],
            ["Brake pads", 2000, "Replace rim or disc brake pads when the groove is worn away"],
            ["Tyres", 5000, "Check for cuts and a flattened tread; replace worn tyres before they puncture"],
            ["Cassette", 10000, "Replace the cassette when a new chain skips under pedalling load"],
        ],
    ),
    (
        "Parts budget",
        [
            ["Part", "Quantity", "Unit price", "Total"],
            ["Chain", 2, 35, ("B2*C2", 70)],
            ["Brake pads", 4, 12, ("B3*C3", 48)],
            ["Inner tubes", 3, 8, ("B4*C4", 24)],
            ["Sum", "", "", ("SUM(D2:D4)", 142)],
        ],
    ),
]

RAINFALL_SHEETS = [
    (
        "Annual rainfall",
        [
            ["City", "Rainfall (mm)", "Rainy days", "Remark"],
            ["Bergen", 2250, 231, "One of the wettest cities in Europe, rain falls on most days of the year"],
            ["Lisbon", 690, 90, "Dry summers, most precipitation falls between November and February"],
            ["Cairo", 25, 5, "Desert climate with almost no rain"],
            ["Mumbai", 2200, 95, "Monsoon rains from June to September bring nearly all the annual precipitation"],
        ],
    ),
    ("Sources", [["Climate normals 1991 to 2020, rounded"]]),
]

ESPRESSO_SLIDES = [
    (
        "Espresso basics",
        ["Hot water near 93 degrees Celsius", "Forced through finely ground coffee at 9 bar of pressure"],
        ["Start by explaining what makes espresso different from filter coffee: pressure and a short contact time."],
    ),
    (
        "Dialing in the grinder",
        ["Brew ratio of about 1 to 2, dry coffee to liquid espresso", "Aim for an extraction of 25 to 30 seconds"],
        ["If the shot runs fast and tastes sour, grind finer; if it runs slow and bitter, grind coarser."],
    ),
    (
        "Steaming milk",
        ["Stretch the milk first, with the steam tip just below the surface", "Then texture it into silky microfoam for a latte or cappuccino", "Stop at 60 to 65 degrees Celsius"],
        ["Demonstrate the whirlpool in the jug that folds large bubbles into microfoam."],
    ),
    (
        "Cleaning the machine",
        ["Backflush the group head with detergent every week", "Descale the boiler according to the water hardness"],
        ["Remind everyone to purge the steam wand after each use."],
    ),
]

CATHEDRAL_SECTIONS = [
    (
        "Pointed arches and rib vaults",
        [
            "Gothic builders replaced the round Romanesque arch with the pointed arch, which directs the weight of the vault more steeply downward and can span bays of different widths at the same height.",
            "Ribbed vaults concentrate the load of the ceiling onto a few points, the piers, instead of spreading it along thick continuous walls.",
        ],
    ),
    (
        "Flying buttresses",
        [
            "Flying buttresses are external half arches that carry the outward thrust of the high vaults across the side aisles to massive piers outside the building, so the walls between them can be opened up.",
        ],
    ),
    (
        "Stained glass",
        [
            "With the walls freed from carrying the vault, cathedrals such as Chartres and the Sainte-Chapelle filled them with enormous stained glass windows that told biblical stories in coloured light.",
        ],
    ),
]

KNOT_CHAPTERS = [
    (
        "The cleat hitch",
        ["To make a line fast to a cleat, take a full turn around the base, cross over the top in a figure eight, and finish with a locking hitch so the line lies flat and can be released under load."],
    ),
    (
        "The bowline",
        ["The bowline ties a fixed loop at the end of a line that will not slip or jam, and it can still be untied easily after carrying a heavy load. Sailors learn it as the rabbit coming out of the hole, around the tree and back down the hole."],
    ),
    (
        "Reefing the mainsail",
        ["When the wind rises, reef early: ease the mainsheet, lower the halyard to the reef point, hook the tack, tension the reefing line at the clew, and tie the reef points loosely under the boom."],
    ),
]


def main():
    for rel, (title, paragraphs) in DOCS.items():
        ext = rel.rsplit(".", 1)[1]
        if ext == "pdf":
            data = pdf_document(title, paragraphs, page_per_paragraph=rel == "gardening/tomatoes.pdf")
        elif ext == "docx":
            margins = None
            if rel == "music/jazz-improvisation.docx":
                margins = (
                    "Jazz workshop handout",
                    "Improvisation level two, spring term",
                    "Charlie Parker recorded Ko-Ko in 1945 over the chord changes of the standard Cherokee.",
                )
            data = docx_document(title, paragraphs, margins)
        else:
            data = text_document(title, paragraphs, ext == "md")
        write(rel, data)

    # One document per further format, each on a topic of its own.
    write("maritime/lighthouse-keeping.html", html_document(*LIGHTHOUSES))
    xlsx = xlsx_document("Bicycle maintenance log", BIKE_SHEETS)
    write("cycling/bike-maintenance.xlsx", xlsx)
    ods = ods_document("Rainfall of four cities", RAINFALL_SHEETS)
    write("weather/rainfall.ods", ods)
    # Written as slide1..slide4, presented with the milk slide first.
    pptx = pptx_document("Espresso training for new baristas", ESPRESSO_SLIDES, order=[3, 1, 2, 4])
    write("coffee/espresso-brewing.pptx", pptx)
    odt_args = (
        "Gothic cathedrals",
        CATHEDRAL_SECTIONS,
        "Architecture reading group",
        "Handout three: the Gothic style",
        "Abbot Suger rebuilt the choir of the abbey church of Saint-Denis from 1140, the first Gothic choir.",
    )
    odt = odt_document(*odt_args)
    write("architecture/gothic-cathedrals.odt", odt)
    # Read in spine order: the bowline first.
    epub = epub_document("Knots and sail handling", KNOT_CHAPTERS, spine=[2, 1, 3])
    write("sailing/knots.epub", epub)

    # Bad inputs: each must be recorded as failed with its own reason.
    whole_pdf = pdf_document(*DOCS["gardening/tomatoes.pdf"])
    write("bad/truncated.pdf", whole_pdf[: len(whole_pdf) // 3])
    write("bad/not-a-zip.docx", b"This is plain text pretending to be a Word document.\n")
    write("bad/binary.txt", bytes((i * 37 + 11) % 256 for i in range(4096)))
    write("bad/empty.md", b"")
    write(b"bad/caf\xe9-latin1-name.txt", b"A file whose name is not valid UTF-8.\n")

    # Per further format: cut short, not a zip package, the contents of another format, and
    # password-protected (Office files are then OLE compound files; OpenDocument and EPUB
    # files list their encrypted parts).
    compound_file = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    docx = docx_document(*DOCS["finance/compound-interest.docx"])
    for ext, good, wrong in (
        ("xlsx", xlsx, pptx),
        ("ods", ods, odt),
        ("pptx", pptx, docx),
        ("odt", odt, ods),
        ("epub", epub, odt),
    ):
        write(f"bad/truncated.{ext}", good[: len(good) // 3])
        write(f"bad/not-a-zip.{ext}", f"Plain text in a file named .{ext}.\n".encode())
        write(f"bad/wrong-content.{ext}", wrong)
    for ext in ("xlsx", "pptx", "docx"):
        write(f"bad/encrypted.{ext}", compound_file)
    write("bad/encrypted.odt", odt_document(*odt_args, encrypted=True))
    write("bad/encrypted.ods", ods_document("Rainfall of four cities", RAINFALL_SHEETS, encrypted=True))
    write("bad/encrypted.epub", epub_document("Knots and sail handling", KNOT_CHAPTERS, spine=[2, 1, 3], encrypted=True))
    write("bad/not-a-workbook.xls", b"Plain text in a file named .xls.\n")
    write("bad/image.html", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes((i * 31 + 3) % 256 for i in range(512)))

    # Files without an extension: text ones are indexed, others skipped as not text.
    write("software/README", README.encode())
    write("software/LICENSE", LICENSE.encode())
    elf_header = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00"
    write("bad/tool-binary", elf_header + bytes((i * 53 + 7) % 256 for i in range(2048)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
