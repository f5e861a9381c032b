"""Word lists shipped with the matcher: stop words (greetings and fillers included) and synonyms.

Synonym groups name what a customer means in a shop's words; every member (after stemming) adds the
group's feature, so "Scherben" meets an entry that says "beschädigt". Keep groups narrow: a group
that is too wide makes unrelated entries look alike.
"""

from __future__ import annotations

_DE_STOP = """
aber alle allem allen aller alles als also am an ander andere anderen anderer anderes anderem
auch auf aus bei beim bin
bis bitte bis bist da dabei damit dann das dass dein deine dem den denn der des dessen dich die dies
diese diesem diesen dieser dieses dir doch dort du durch ein eine einem einen einer eines einfach
er es etwas euch euer eure für gegen gewesen hab habe haben hat hatte hätte ich ihm ihn ihnen ihr
ihre ihrem ihren ihrer im in ist ja jetzt kann könnte können man mich mir mit muss nach nicht nichts
noch nun nur ob oder ohne schon sehr sein seine sich sie sind so soll sollte um und uns unser unsere
unter vom von vor war waren warum was weil wenn wer werde werden wie wir wird würde zu zum zur
über hallo hi hey moin servus guten tag morgen abend sehr geehrte geehrter damen herren liebe lieber
liebes team grüße gruß gruss gruesse grüsse danke dank vielen viele vielmals freundlichen
freundliche mfg lg vg beste besten herzliche herzlichen schöne frage fragen kurz kurze
eigentlich mal bzw
leider gerne gern möchte möchten würden hätten wäre bitten bitte dies ok okay also schon
erstmal halt eben denn irgendwie sonst bisschen ganz gar genau da dass daß eure ihres hier
mein meine meinen meinem meiner meines unsere euer eurem euren eurer ihr ihrem ihnen
könnt könnten kannst konnte gibt gib geht gehen bräuchte brauche benötige hätte
zusammen leute nochmal erneut schnelle antwort voraus vorab grüezi huhu tschüss
"""

_EN_STOP = """
a about above after again all am an and any are as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having
he her here hers herself him himself his how i if in into is it its itself just me more most my
myself no nor not now of off on once only or other our ours out over own same she should so some
such than that the their theirs them then there these they this those through to too under until
up very was we were what when where which while who whom why will with would you your yours
yourself hello hi hey dear team thanks thank please regards kind best cheers sir madam morning
afternoon evening good greetings hope well ok okay also still just really quick question
"""

STOPWORDS: dict[str, frozenset[str]] = {
    lang: frozenset(
        word.casefold().replace("ä", "a").replace("ö", "o").replace("ü", "u").replace("ß", "ss")
        for word in words.split())
    for lang, words in (("de", _DE_STOP), ("en", _EN_STOP))
}

SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "de": {
        "damaged": ("kaputt", "defekt", "beschädigt", "zerbrochen", "scherben", "scherbe",
                    "zersprungen", "gesprungen", "sprung", "sprünge", "zerkratzt", "kratzer",
                    "delle", "dellen", "riss", "risse", "gerissen", "bruch", "zerbrechen",
                    "kaputtgegangen", "transportschaden", "abgebrochen", "zerdrückt", "eingedrückt",
                    "ramponiert", "schaden", "beschädigung", "fehlerhaft", "mangel", "mängel",
                    "mangelhaft", "macke", "macken", "angeschlagen", "abgesplittert", "splitter",
                    "zersplittert", "zerschlagen", "zerstört", "gebrochen", "abgeplatzt",
                    "abgesprungen", "verbeult", "verbogen", "undicht", "tropft", "leck", "klirrt",
                    "klirrte", "hin", "lädiert", "bruchschaden", "glasbruch", "reklamation",
                    "reklamieren", "garantie", "gewährleistung", "wackelt", "locker", "geklirrt",
                    "scheppert", "gescheppert", "knacks", "haarriss", "haarrisse", "rissig",
                    "abgeschlagen", "ausgebrochen", "zerschellt", "zertrümmert", "demoliert",
                    "angeknackst", "verkratzt", "bruchstücke", "schadhaft", "zerbröselt",
                    "verformt", "eingerissen", "beschädigungen"),
        "order": ("bestellung", "bestellt", "auftrag", "order", "kauf", "gekauft", "einkauf",
                  "bestellen", "bestellnummer", "bestellnr", "auftragsnummer"),
        "parcel": ("paket", "sendung", "lieferung", "päckchen", "päckle", "karton", "packet",
                   "zustellung", "pakete", "paketdienst", "packerl", "päckli", "paketl",
                   "sendungen"),
        "where": ("wo", "verbleib", "steckt", "bleibt", "tracking", "sendungsverfolgung",
                  "sendungsnummer", "sendungsstatus", "status", "unterwegs", "verfolgen",
                  "trackingnummer", "trackinglink", "versandbestätigung", "dhl", "hermes", "dpd",
                  "gls", "ups", "paketbote", "verteilzentrum", "paketzentrum", "verlassen",
                  "rausgegangen", "losgeschickt", "abgeschickt", "verschickt", "versendet", "stand",
                  "angekommen", "nachverfolgen", "paketverfolgung", "trackingcode", "zugestellt",
                  "zustellversuch", "verschollen", "postbote", "briefkasten", "eingetroffen",
                  "lieferstatus", "bestellstatus"),
        "duration": ("lange", "dauer", "dauert", "lieferzeit", "lieferzeiten", "schnell",
                     "schneller", "tage", "werktage", "werktagen", "lieferdauer", "versanddauer",
                     "zeitraum", "express", "expressversand", "expresszustellung", "eilversand",
                     "eilig", "rechtzeitig", "voraussichtlich", "ungefähr", "zustellzeit",
                     "braucht", "brauchen", "benötigt", "weihnachten", "geburtstag", "geschenk",
                     "übermorgen", "spätestens", "frühestens", "laufzeit", "schafft", "schaffen",
                     "schaffst", "liefertermin", "lieferdatum", "zustelltermin", "ankunft",
                     "arbeitstage", "expresslieferung", "eillieferung", "dauern"),
        "return": ("rücksendung", "zurückschicken", "zurücksenden", "zurückgeschickt", "retoure",
                   "retouren", "retournieren", "umtauschen", "umtausch", "tauschen", "eintauschen",
                   "zurückgeben", "rückgabe", "widerruf", "widerrufen", "widerrufsrecht",
                   "widerrufsfrist", "rückgaberecht", "rückgabefrist", "zurück", "rücksenden",
                   "retour", "zurückgehen", "rückversand", "zurückschickt", "gefällt",
                   "zurückbringen", "rückschicken", "rücknahme", "umtauschbar",
                   "rückgabebedingungen", "widerrufsbelehrung", "retourniert", "zurückgesendet",
                   "rücksendungen", "gefallen"),
        "refund": ("erstattung", "erstatten", "erstattet", "rückerstattung", "geld",
                   "zurückerstattet", "gutschrift", "gutgeschrieben", "rückzahlung",
                   "zurückgezahlt", "zurücküberwiesen", "zurückbuchung", "rückbuchung",
                   "zurückbekommen", "kaufpreis", "zurückgebucht", "kohle", "zurückbezahlt",
                   "zurücküberweisen", "erstattungsbetrag", "gutschreiben", "wiederbekommen",
                   "zurückerhalten", "rückerstatten", "zurückerstatten", "vergütet",
                   "zurückvergütet", "rückvergütung", "vergüten", "zurückvergüten"),
        "cancel": ("stornieren", "storno", "stornierung", "storniert", "annullieren",
                   "annullierung", "zurückziehen", "abbrechen", "canceln", "rückgängig",
                   "zurücktreten", "rücktritt", "verklickt", "versehentlich", "überlegt",
                   "umentschieden", "versehen", "doppelt", "anhalten", "aufheben", "annulieren"),
        "pay": ("bezahlen", "zahlen", "zahlung", "zahlungsart", "zahlungsarten", "zahlungsmethode",
                "zahlungsmethoden", "zahlungsmöglichkeiten", "bezahlmöglichkeiten",
                "bezahlmöglichkeit", "zahlungsoptionen", "paypal", "kreditkarte", "kreditkarten",
                "rechnungskauf", "vorkasse", "überweisung", "lastschrift", "klarna", "bezahlung",
                "apple", "google", "sofortüberweisung", "ratenzahlung", "raten", "giropay", "sepa",
                "visa", "mastercard", "amex", "nachnahme", "barzahlung", "bar", "girocard", "ec",
                "bezahlt", "zahlungsweise", "bezahlweise", "bezahlart", "bezahloptionen", "twint",
                "maestro", "debitkarte", "bankeinzug", "vorauskasse", "paysafecard", "akzeptieren",
                "zahlungsmittel", "bezahlmethode", "bezahlmethoden"),
        "payfail": ("fehlgeschlagen", "abgelehnt", "abgewiesen", "fehlermeldung", "zweimal",
                    "abgebucht", "abbuchung", "belastet", "mahnung", "zahlungserinnerung",
                    "inkasso", "unbezahlt", "berechnet", "durchgegangen", "klappt",
                    "zahlungsfehler", "zahlungsproblem", "gescheitert", "verweigert",
                    "doppelbuchung", "kontoauszug", "mahngebühr", "mahngebühren", "zahlungseingang",
                    "ausstehend", "geklappt", "eingezogen"),
        "invoice": ("rechnung", "rechnungen", "beleg", "quittung", "rechnungskopie", "kaufbeleg",
                    "mehrwertsteuer", "mwst", "ust", "umsatzsteuer", "steuer", "rechnungsadresse",
                    "buchhaltung", "firmenrechnung", "ausgewiesen", "duplikat", "pdf",
                    "steuererklärung", "firma", "rechnungsnummer", "zahlungsbeleg", "kassenbon",
                    "bon", "ausstellen", "ausgestellt", "gmbh", "steuerberater", "netto", "brutto",
                    "rechnungsanschrift", "ustid"),
        "address": ("adresse", "anschrift", "lieferadresse", "lieferanschrift", "zustelladresse",
                    "versandadresse", "wohnort", "umgezogen", "umzug", "ziehe", "straße",
                    "hausnummer", "hausnr", "postleitzahl", "plz", "wohnung", "wohnungsnummer",
                    "nachbar", "nachbarin", "nachbarn", "packstation", "empfänger", "büro",
                    "arbeitsstelle", "adressänderung", "wohnadresse", "firmenadresse", "postfach",
                    "nachsendeauftrag", "lieferort", "abstellort", "str"),
        "change": ("ändern", "änderung", "korrigieren", "anpassen", "umändern", "vertippt",
                   "tippfehler", "aktualisieren", "geändert", "hinzufügen", "dazunehmen",
                   "dazupacken", "ergänzen", "erhöhen", "reduzieren", "entfernen", "austauschen",
                   "nachträglich", "anzahl", "stückzahl", "menge", "variante", "umbestellen",
                   "wechseln", "umstellen", "dazubestellen", "mitbestellen", "zusätzlich",
                   "abändern", "erweitern", "rausnehmen", "herausnehmen", "weglassen", "dazulegen",
                   "dazu", "umbuchen", "vertan", "änderungen"),
        "open": ("öffnungszeiten", "offen", "erreichbar", "erreichen", "sprechzeiten", "uhrzeit",
                 "uhr", "laden", "geschäft", "filiale", "ladengeschäft", "samstag", "samstags",
                 "mittags", "heute", "geschlossen", "schließt", "telefon", "anrufen", "hotline",
                 "telefonnummer", "telefonisch", "rückruf", "besetzt", "zeiten", "öffnungszeit",
                 "aufhaben", "ladenöffnungszeiten", "servicezeiten", "erreichbarkeit",
                 "kundendienst", "telefonzeiten", "mittagspause", "mittag", "anruf",
                 "telefonieren", "durchwahl"),
        "offhours": ("wochenende", "sonntag", "sonntags", "feiertag", "feiertagen", "feiertags",
                     "nachts", "abends", "urlaub", "betriebsferien", "ostern", "pfingsten",
                     "silvester", "neujahr", "außerhalb", "nacht", "spät", "spätabends",
                     "heiligabend", "brückentag", "betriebsurlaub", "ferien", "notdienst",
                     "wochenenden", "feierabend", "sonntagen", "samstagabend"),
        "pickup": ("abholen", "abholung", "selbstabholung", "abholbereit", "abholbar",
                   "vorbeikommen", "mitnehmen", "holen", "persönlich", "click", "collect", "selbst",
                   "selbstabholer", "abholort", "abholstation", "ladenabholung", "zurücklegen",
                   "reservieren", "abholfertig", "bereitliegen"),
        "missing": ("fehlt", "fehlen", "fehlte", "fehlten", "fehlend", "unvollständig",
                    "vollständig", "komplett", "teillieferung", "vergessen", "teilweise", "rest",
                    "restliche", "restlichen", "hälfte", "nachlieferung", "separat", "leer",
                    "lieferschein", "fehlende", "nachliefern", "nachgeliefert", "nachsenden",
                    "nachschicken", "teilsendung", "weniger", "enthalten"),
        "wrong": ("falsch", "falsche", "falschen", "falscher", "falsches", "verwechselt",
                  "vertauscht", "verwechslung", "stattdessen", "statt", "anstatt", "anstelle",
                  "stimmt", "fremde", "modell", "falschlieferung", "fehllieferung", "irrtümlich",
                  "irrtum", "verwechselung"),
        "voucher": ("gutschein", "gutscheine", "gutscheincode", "rabatt", "rabatte", "rabattcode",
                    "code", "aktion", "aktionscode", "promocode", "coupon", "geschenkgutschein",
                    "geschenkkarte", "prozent", "einlösen", "eingelöst", "ungültig", "abgezogen",
                    "kombinieren", "gültig", "gutscheinkarte", "einlösbar", "rabattaktion", "sale",
                    "neukundenrabatt", "willkommensrabatt", "gutscheinwert", "guthaben",
                    "restguthaben", "wertgutschein", "preisnachlass", "nachlass", "ermäßigung",
                    "vergünstigung", "gutscheinen"),
        "account": ("konto", "kundenkonto", "benutzerkonto", "profil", "passwort", "login",
                    "anmelden", "anmeldung", "einloggen", "eingeloggt", "registrieren",
                    "registrierung", "zugang", "zugangsdaten", "benutzername", "account",
                    "kennwort", "zurücksetzen", "löschen", "datenschutz", "dsgvo", "anmeldedaten",
                    "logindaten", "ausloggen", "gesperrt", "sperre", "aktivieren", "aktivierung",
                    "registriert", "gastbestellung", "gastkonto", "nutzerkonto", "benutzer",
                    "kundennummer", "passwords", "konten", "kundenkonten", "benutzerkonten"),
        "shipping_cost": ("versandkosten", "porto", "portokosten", "versandgebühr",
                          "versandgebühren", "kostenlos", "gratis", "gebühr", "gebühren",
                          "versandkostenfrei", "mindestbestellwert", "bestellwert", "einkaufswert",
                          "kostet", "kosten", "verlangt", "teuer", "versandpauschale",
                          "lieferkosten", "zustellkosten", "frachtkosten", "gratisversand",
                          "kostenfrei", "umsonst", "aufpreis", "zuschlag", "portofrei",
                          "lieferpauschale", "versandkostenpauschale"),
        "abroad": ("ausland", "österreich", "schweiz", "international", "eu", "zoll",
                   "zollgebühren", "einfuhr", "einfuhrabgaben", "verzollung", "niederlande",
                   "frankreich", "belgien", "italien", "spanien", "polen", "dänemark", "luxemburg",
                   "tschechien", "schweden", "england", "usa", "wien", "zürich", "basel", "bern",
                   "salzburg", "graz", "europa", "grenze", "ausländisch", "deutschland", "länder",
                   "südtirol", "tirol", "liechtenstein", "norwegen", "portugal", "griechenland",
                   "irland", "finnland", "ungarn", "kroatien", "slowenien", "slowakei", "rumänien",
                   "bulgarien", "großbritannien", "uk", "kanada", "australien", "holland",
                   "weltweit", "lieferländer", "zollkosten", "luzern", "linz", "innsbruck", "genf",
                   "lausanne", "brexit", "drittland", "auslandsversand", "auslandslieferung",
                   "einfuhrumsatzsteuer", "export", "amerika", "japan", "zollabfertigung",
                   "verzollt"),
        "stock": ("verfügbar", "verfügbarkeit", "lieferbar", "bestellbar", "vorrätig",
                  "ausverkauft", "vergriffen", "nachschub", "lager", "bestand", "nachbestellen",
                  "nachproduziert", "benachrichtigen", "benachrichtigung", "bescheid", "rein",
                  "reinbekommen", "vorrat", "lagernd", "erhältlich", "nachlieferbar", "sortiment",
                  "restposten", "vormerken", "vorbestellen", "vorbestellung", "warteliste",
                  "nachproduktion", "eingestellt"),
        "product": ("material", "maße", "größe", "durchmesser", "höhe", "hoch", "breit", "inhalt",
                    "fassungsvermögen", "liter", "ml", "gewicht", "schwer", "spülmaschine",
                    "spülmaschinenfest", "mikrowelle", "backofen", "ofenfest", "hitzebeständig",
                    "glasur", "bleifrei", "lebensmittelecht", "pflege", "reinigen", "porzellan",
                    "steinzeug", "keramik", "handgemacht", "abmessungen", "breite", "groß",
                    "spülmaschinengeeignet", "geeignet", "steingut", "ton", "glasiert",
                    "unglasiert", "mikrowellengeeignet", "mikrowellenfest", "backofenfest", "grad",
                    "temperatur", "hitze", "spülmaschinentauglich", "geschirrspüler", "handwäsche",
                    "zentimeter", "cm", "gramm", "fasst", "füllmenge", "volumen", "hergestellt",
                    "herkunft", "handarbeit", "unikat", "blei", "cadmium", "induktion", "stapelbar",
                    "pflegehinweise", "produktbeschreibung", "tief", "klein", "kleiner", "größer",
                    "herd", "herdplatte", "kochfeld", "ceranfeld", "gasherd", "induktionsherd",
                    "gefrierschrank", "gefrierfach", "tiefkühler", "frostfest", "frostsicher",
                    "kratzfest", "wetterfest", "draußen", "lebensmittel", "säure", "heiß"),
        "label": ("etikett", "etiketten", "retourenschein", "rücksendeschein", "versandschein",
                  "aufkleber", "label", "retourenlabel", "rücksendelabel", "versandlabel",
                  "retourenetikett", "rücksendeetikett", "versandetikett", "paketschein",
                  "paketmarke", "retourenmarke", "rücksendemarke", "ausdrucken", "drucken",
                  "drucker", "printer", "qr", "rückversandetikett", "retourenaufkleber",
                  "versandmarke", "retourencode", "retourennummer", "rücksendecode",
                  "rücksendenummer", "retourenportal"),
        "newsletter": ("newsletter", "abmelden", "werbung", "werbemails", "werbemail", "mails",
                       "emails", "spam", "verteiler", "mailingliste", "angebote", "austragen",
                       "streichen", "streicht", "abonnement", "abo", "abbestellen", "abmeldung",
                       "abmeldelink", "reklame", "mailings", "marketing", "abonniert", "abonnieren",
                       "eintragen", "unsubscribe", "werbeemails", "infomails", "werbepost"),
        "color": ("farbe", "farben", "weiß", "schwarz", "blau", "blaue", "rot", "grün", "gelb",
                  "grau", "rosa", "braun", "beige", "orange", "lila", "türkis", "bunt"),
        "wait": ("warte", "warten", "wartet", "gewartet", "immer", "seit", "gehört"),
    },
    "en": {
        "damaged": ("broken", "damaged", "cracked", "shattered", "smashed", "defective", "faulty",
                    "dented", "scratched", "torn", "ripped", "busted", "chipped", "pieces",
                    "shards", "smashed"),
        "order": ("order", "purchase", "bought", "ordered"),
        "parcel": ("parcel", "package", "delivery", "shipment", "box"),
        "where": ("where", "track", "tracking", "arrived", "arrive", "status", "received"),
        "return": ("return", "exchange", "returning", "swap"),
        "refund": ("refund", "money", "reimburse", "reimbursement", "credit", "repay"),
        "cancel": ("cancel", "cancellation", "annul", "withdraw", "stop"),
        "pay": ("pay", "payment", "paypal", "klarna"),
        "invoice": ("invoice", "receipt", "bill", "vat"),
        "address": ("address", "street", "moved", "postcode", "zip"),
        "open": ("opening", "hours", "open", "closed", "shop", "store", "visit", "saturday",
                 "sunday"),
        "voucher": ("voucher", "coupon", "discount", "promo", "code"),
        "account": ("account", "password", "login", "sign", "log"),
    },
}

# Phrases that mean a synonym group only as a whole, mostly a negation or a count ("nicht
# bestellt", "nur 5"); matched on the folded words, stop words included; "#" is any number,
# "*" any one word.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "de": {
        "missing": ("nur #", "# statt #", "# von #", "nicht dabei", "nicht drin",
                    "nicht im paket", "nicht im karton", "nicht enthalten", "nicht mitgeliefert",
                    "nicht mitgeschickt", "zu wenig", "nur ein teil", "nur einen teil",
                    "nur die halfte", "der rest", "den rest", "fehlt noch"),
        "damaged": ("in zwei teilen", "in # teilen", "in stucken", "in einzelteilen",
                    "in scherben", "nicht mehr ganz"),
        "wrong": ("bestellt hatte ich", "hatte ich bestellt", "nicht bestellt",
                  "nicht das bestellte", "nicht meine", "nicht meins",
                  "etwas anderes", "was anderes", "ganz anderer", "ganz andere", "ganz anderes",
                  "ganz anderen", "anderen artikel", "anderer artikel", "falsche artikel",
                  "aber # bekommen", "aber bekommen", "bestellt aber * bekommen",
                  "bestellt aber * geliefert", "bestellt aber * erhalten", "bekommen habe ich",
                  "erhalten habe ich", "geliefert wurde"),
        "where": ("schon raus", "schon unterwegs", "schon verschickt", "schon versendet",
                  "lager verlassen", "noch nicht da", "noch nicht angekommen", "nicht angekommen",
                  "noch nichts", "immer noch nicht", "wo bleibt", "wo ist", "wo steckt",
                  "nie angekommen"),
        "refund": ("geld zuruck", "betrag zuruck", "geld wieder"),
        "cancel": ("doch nicht", "nicht mehr haben", "nicht mehr brauche", "anders uberlegt",
                   "nicht mehr will"),
        "pay": ("auf rechnung", "per rechnung"),
        "payfail": ("doppelt bezahlt", "doppelt abgebucht", "doppelt eingezogen",
                    "doppelt belastet", "doppelt berechnet", "zweimal bezahlt"),
        "address": ("falsche adresse", "adresse falsch", "falsche anschrift", "anschrift falsch",
                    "falsche hausnummer", "hausnummer falsch", "falsche plz", "plz falsch",
                    "falsche postleitzahl", "postleitzahl falsch", "falsche strasse"),
        "account": ("mail adresse", "e mail adresse"),
        "duration": ("am gleichen tag", "am selben tag", "schon morgen", "morgen da",
                     "noch heute", "am nachsten tag", "bis wann bestellen"),
        "open": ("heute offen", "heute geoffnet", "lange offen", "lange geoffnet",
                 "habt ihr offen", "habt ihr geoffnet"),
        "offhours": ("zwischen den jahren", "jemand da"),
        "stock": ("wieder da", "wieder geben", "wieder haben", "noch da", "wieder rein"),
    },
}

