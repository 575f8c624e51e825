// Validates FHIR R4 resources as a receiving EPR's integration team would: with the HAPI FHIR
// validator (not the code podlink builds its messages with), against base R4, the UK Core
// profiles and podlink's own published CodeSystems and extension StructureDefinitions.
//
//     java -cp '<jars>/*' Validator.java CONFORMANCE_DIR... < resources.jsonl
//
// Run with Java's single-file source launcher (no build step); podlink_devtools.fhir_validator
// resolves the jars that pom.xml beside this file pins. Every *.xml and *.json file under each
// CONFORMANCE_DIR (StructureDefinitions without snapshots, ValueSets, CodeSystems) is loaded
// before the first resource is read. Standard input holds one resource per line; for each, one
// JSON line is printed once it is validated:
//     {"issues":[{"severity":"warning","location":"Bundle.entry[1]...","messageId":"...","message":"..."}]}
// One JVM validates any number of resources: loading and snapshot generation happen once.

import ca.uhn.fhir.context.FhirContext;
import ca.uhn.fhir.context.support.DefaultProfileValidationSupport;
import ca.uhn.fhir.validation.FhirValidator;
import ca.uhn.fhir.validation.SingleValidationMessage;
import ca.uhn.fhir.validation.ValidationResult;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.hl7.fhir.common.hapi.validation.support.CommonCodeSystemsTerminologyService;
import org.hl7.fhir.common.hapi.validation.support.InMemoryTerminologyServerValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.PrePopulatedValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.SnapshotGeneratingValidationSupport;
import org.hl7.fhir.common.hapi.validation.support.ValidationSupportChain;
import org.hl7.fhir.common.hapi.validation.validator.FhirInstanceValidator;
import org.hl7.fhir.instance.model.api.IBaseResource;

public class Validator {
    private static final ObjectMapper JSON = new ObjectMapper();

    public static void main(String[] args) throws Exception {
        if (args.length == 0) {
            System.err.println("usage: Validator CONFORMANCE_DIR... < resources.jsonl");
            System.exit(2);
        }
        FhirContext context = FhirContext.forR4();
        PrePopulatedValidationSupport loaded = new PrePopulatedValidationSupport(context);
        int count = 0;
        for (String dir : args) {
            count += load(context, loaded, Path.of(dir));
        }
        System.err.println("loaded " + count + " conformance resources");
        ValidationSupportChain chain = new ValidationSupportChain(
            new DefaultProfileValidationSupport(context),
            loaded,
            new SnapshotGeneratingValidationSupport(context),
            new InMemoryTerminologyServerValidationSupport(context),
            new CommonCodeSystemsTerminologyService(context));
        FhirInstanceValidator instanceValidator = new FhirInstanceValidator(chain);
        // Strict where a lenient receiver would hide our mistakes: an extension or profile the
        // validator cannot resolve is an error, not a note.
        instanceValidator.setAnyExtensionsAllowed(false);
        instanceValidator.setErrorForUnknownProfiles(true);
        FhirValidator validator = context.newValidator().registerValidatorModule(instanceValidator);

        PrintStream out = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            if (line.isBlank()) {
                continue;
            }
            ObjectNode answer = JSON.createObjectNode();
            ArrayNode issues = answer.putArray("issues");
            try {
                ValidationResult result = validator.validateWithResult(line);
                for (SingleValidationMessage message : result.getMessages()) {
                    ObjectNode issue = issues.addObject();
                    issue.put("severity", message.getSeverity().getCode());
                    issue.put("location", message.getLocationString());
                    issue.put("messageId", message.getMessageId());
                    issue.put("message", message.getMessage());
                }
            } catch (RuntimeException e) {
                // Unparseable input is a finding about that input, not the end of the run.
                ObjectNode issue = issues.addObject();
                issue.put("severity", "fatal");
                issue.put("location", "");
                issue.put("messageId", "podlink-validator-exception");
                issue.put("message", e.toString());
            }
            out.println(JSON.writeValueAsString(answer));
        }
    }

    private static int load(FhirContext context, PrePopulatedValidationSupport loaded, Path dir)
            throws IOException {
        List<Path> files;
        try (Stream<Path> walk = Files.walk(dir)) {
            files = walk.filter(Files::isRegularFile)
                .filter(p -> p.toString().endsWith(".xml") || p.toString().endsWith(".json"))
                .sorted()
                .toList();
        }
        for (Path file : files) {
            String text = Files.readString(file, StandardCharsets.UTF_8);
            IBaseResource resource = file.toString().endsWith(".xml")
                ? context.newXmlParser().parseResource(text)
                : context.newJsonParser().parseResource(text);
            loaded.addResource(resource);
        }
        return files.size();
    }
}
